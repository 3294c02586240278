// rmsprop_update: one RMSprop step in place for n contiguous elements of a variable and its slots.
//   v = v * rho;  v += (1 - rho) * (g * g)
//   centered:     a = a * rho;  a += (1 - rho) * g;  d = v - a * a + epsilon;   else d = v + epsilon
//   inc = lr * g / sqrt(d)
//   use_momentum: mom = mom * momentum;  mom += inc;  p -= mom;                 else p -= inc
// average_grad (a) is used only when centered and moment (mom) only with use_momentum; the
// launcher passes velocity for an unused one, which is then neither read nor written.
// Contract: grid-stride loop over n elements, each read and written by one thread. lr is read from
// device memory, scalars[0] (a double, the value of this step), so that a captured CUDA graph sees
// each step's value; rho, 1 - rho, momentum and epsilon are computed in Python double. All are
// rounded to T. Reference: the primitive rmsprop_update in gpugrad/primitives/updates.py, with the
// same operations in the same order, each rounded to T as NumPy does.

#ifndef GG_RMSPROP_UPDATE_CU
#define GG_RMSPROP_UPDATE_CU

#include "update_common.cuh"

// Element i of the variable: the kernel's loop body, which a generated kernel updating several
// variables in one launch (gpugrad/update_batches.py) calls too.
template <typename T>
__device__ inline void rmsprop_update_element(T* param, const T* grad, T* velocity, T* average_grad, T* moment,
                                              long long i, T lr, T rho, T one_minus_rho, T momentum, T epsilon,
                                              int centered, int use_momentum) {
    const T g = grad[i];
    const T v = rounded_product(velocity[i], rho) + rounded_product(one_minus_rho, rounded_product(g, g));
    velocity[i] = v;
    T denominator;
    if (centered) {
        const T a = rounded_product(average_grad[i], rho) + rounded_product(one_minus_rho, g);
        average_grad[i] = a;
        denominator = (v - rounded_product(a, a)) + epsilon;
    } else {
        denominator = v + epsilon;
    }
    T increment = rounded_product(lr, g) / square_root(denominator);
    if (use_momentum) {
        increment = rounded_product(moment[i], momentum) + increment;
        moment[i] = increment;
    }
    param[i] = param[i] - increment;
}

template <typename T>
__global__ void rmsprop_update(T* param, const T* grad, T* velocity, T* average_grad, T* moment,
                               const double* scalars, long long n, T rho, T one_minus_rho, T momentum, T epsilon,
                               int centered, int use_momentum) {
    const T lr = (T)scalars[0];
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        rmsprop_update_element(param, grad, velocity, average_grad, moment, i, lr, rho, one_minus_rho, momentum,
                               epsilon, centered, use_momentum);
    }
}

template __global__ void rmsprop_update<float>(float*, const float*, float*, float*, float*, const double*, long long,
                                               float, float, float, float, int, int);
template __global__ void rmsprop_update<double>(double*, const double*, double*, double*, double*, const double*,
                                                long long, double, double, double, double, int, int);

#endif  // GG_RMSPROP_UPDATE_CU
