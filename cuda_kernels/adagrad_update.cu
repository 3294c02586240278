// adagrad_update: one Adagrad step in place for n contiguous elements of a variable and its
// accumulator: acc += g * g;  p -= lr * g / sqrt(acc + epsilon).
// Contract: grid-stride loop over n elements, each read and written by one thread. lr is read from
// device memory, scalars[0] (a double, the value of this step), so that a captured CUDA graph sees
// each step's value; epsilon is the Python float of the reference; both rounded to T.
// Reference: the primitive adagrad_update in gpugrad/primitives/updates.py, with the same
// operations in the same order, each rounded to T as NumPy does.

#ifndef GG_ADAGRAD_UPDATE_CU
#define GG_ADAGRAD_UPDATE_CU

#include "update_common.cuh"

// Element i of the variable: the kernel's loop body, which a generated kernel updating several
// variables in one launch (gpugrad/update_batches.py) calls too.
template <typename T>
__device__ inline void adagrad_update_element(T* param, const T* grad, T* accumulator, long long i, T lr,
                                              T epsilon) {
    const T g = grad[i];
    const T acc = accumulator[i] + rounded_product(g, g);
    accumulator[i] = acc;
    param[i] = param[i] - rounded_product(lr, g) / square_root(acc + epsilon);
}

template <typename T>
__global__ void adagrad_update(T* param, const T* grad, T* accumulator, const double* scalars, long long n,
                               T epsilon) {
    const T lr = (T)scalars[0];
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        adagrad_update_element(param, grad, accumulator, i, lr, epsilon);
    }
}

template __global__ void adagrad_update<float>(float*, const float*, float*, const double*, long long, float);
template __global__ void adagrad_update<double>(double*, const double*, double*, const double*, long long, double);

#endif  // GG_ADAGRAD_UPDATE_CU
