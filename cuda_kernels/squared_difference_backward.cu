// squared_difference_backward: dx[i] = 2 * dy[i] * (x[i] - y[i]), the gradient of (x - y)^2
// with respect to x (the one with respect to y is its negative).
// Contract: grid-stride loop over n contiguous elements, every dx[i] written.
// Reference: xp forward of the primitive squared_difference_backward in gpugrad/primitives/arithmetic.py and its
// rounding rule: x - y, then 2 * dy times it, in float64 for float and double alike, rounded once to T,
// and a zero of its sign where that is below T's smallest normal number.

#include "expressions.cuh"  // widened() and flushed<T>(): the rounding rule

template <typename T>
__global__ void squared_difference_backward(T* dx, const T* dy, const T* x, const T* y, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dx[i] = flushed<T>(__dmul_rn(__dmul_rn(2.0, widened(dy[i])), __dsub_rn(widened(x[i]), widened(y[i]))));
    }
}

template __global__ void squared_difference_backward<float>(float*, const float*, const float*, const float*,
                                                            long long);
template __global__ void squared_difference_backward<double>(double*, const double*, const double*, const double*,
                                                             long long);
