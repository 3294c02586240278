// sgd_update: one SGD step in place for n contiguous elements of a variable and its velocity.
//   step = lr * g
//   mode 0 (plain):    p -= step                         (velocity unused: the launcher passes param)
//   mode 1 (momentum): v = v * momentum - step; p += v
//   mode 2 (nesterov): v = v * momentum - step; p += momentum * v - step
// Contract: grid-stride loop over n elements, each read and written by one thread. lr is read from
// device memory, scalars[0] (a double, the value of this step), so that a captured CUDA graph
// sees each step's value; momentum is the Python float of the reference; both rounded to T.
// Reference: the primitive sgd_update in gpugrad/primitives/updates.py, with the same operations
// in the same order, each rounded to T as NumPy does.

#ifndef GG_SGD_UPDATE_CU
#define GG_SGD_UPDATE_CU

#include "update_common.cuh"

constexpr int SGD_PLAIN = 0;
constexpr int SGD_NESTEROV = 2;

// Element i of the variable: the kernel's loop body, which a generated kernel updating several
// variables in one launch (gpugrad/update_batches.py) calls too.
template <typename T>
__device__ inline void sgd_update_element(T* param, const T* grad, T* velocity, long long i, T lr, T momentum,
                                          int mode) {
    const T step = rounded_product(lr, grad[i]);
    if (mode == SGD_PLAIN) {
        param[i] = param[i] - step;
        return;
    }
    const T v = rounded_product(velocity[i], momentum) - step;
    velocity[i] = v;
    param[i] = mode == SGD_NESTEROV ? param[i] + (rounded_product(momentum, v) - step) : param[i] + v;
}

template <typename T>
__global__ void sgd_update(T* param, const T* grad, T* velocity, const double* scalars, long long n, T momentum,
                           int mode) {
    const T lr = (T)scalars[0];
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        sgd_update_element(param, grad, velocity, i, lr, momentum, mode);
    }
}

template __global__ void sgd_update<float>(float*, const float*, float*, const double*, long long, float, int);
template __global__ void sgd_update<double>(double*, const double*, double*, const double*, long long, double, int);

#endif  // GG_SGD_UPDATE_CU
