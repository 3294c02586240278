// adam_update: one Adam/AdamW step in place for n contiguous elements of a variable and its slots.
//   p -= decay * p                        (AdamW, decoupled != 0: decay = lr * weight_decay)
//   m += (1 - beta_1) * (g - m)
//   v += (1 - beta_2) * (g * g - v)
//   amsgrad: vhat = max(vhat, v) and vhat replaces v below (else vhat unused: the launcher passes v)
//   p -= alpha * m / (sqrt(v) + epsilon),  alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
// Contract: grid-stride loop over n elements, each read and written by one thread. alpha and decay
// change every step: they are read from device memory, scalars[0] and scalars[1] (doubles computed
// in Python as the reference does), so that a captured CUDA graph sees each step's values; 1 - beta_1,
// 1 - beta_2 and epsilon are fixed. All are rounded to T.
// Reference: the primitive adam_update in gpugrad/primitives/updates.py, with the same operations in
// the same order, each rounded to T as NumPy does; max propagates NaN as numpy.maximum.

#ifndef GG_ADAM_UPDATE_CU
#define GG_ADAM_UPDATE_CU

#include "update_common.cuh"

// Element i of the variable: the kernel's loop body, which a generated kernel updating several
// variables in one launch (gpugrad/update_batches.py) calls too.
template <typename T>
__device__ inline void adam_update_element(T* param, const T* grad, T* m, T* v, T* vhat, long long i, T alpha,
                                           T decay, T one_minus_beta_1, T one_minus_beta_2, T epsilon, int decoupled,
                                           int amsgrad) {
    const T g = grad[i];
    T p = param[i];
    if (decoupled) {
        p = p - rounded_product(decay, p);
    }
    const T m_new = m[i] + rounded_product(one_minus_beta_1, g - m[i]);
    const T v_old = v[i];
    const T v_new = v_old + rounded_product(one_minus_beta_2, rounded_product(g, g) - v_old);
    m[i] = m_new;
    v[i] = v_new;
    T second_moment = v_new;
    if (amsgrad) {
        const T h = vhat[i];
        second_moment = (h >= v_new || h != h) ? h : v_new;  // numpy.maximum: NaN wins
        vhat[i] = second_moment;
    }
    param[i] = p - rounded_product(alpha, m_new) / (square_root(second_moment) + epsilon);
}

template <typename T>
__global__ void adam_update(T* param, const T* grad, T* m, T* v, T* vhat, const double* scalars, long long n,
                            T one_minus_beta_1, T one_minus_beta_2, T epsilon, int decoupled, int amsgrad) {
    const T alpha = (T)scalars[0];
    const T decay = (T)scalars[1];
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        adam_update_element(param, grad, m, v, vhat, i, alpha, decay, one_minus_beta_1, one_minus_beta_2, epsilon,
                            decoupled, amsgrad);
    }
}

template __global__ void adam_update<float>(float*, const float*, float*, float*, float*, const double*, long long,
                                            float, float, float, int, int);
template __global__ void adam_update<double>(double*, const double*, double*, double*, double*, const double*,
                                             long long, double, double, double, int, int);

#endif  // GG_ADAM_UPDATE_CU
