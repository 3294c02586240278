// tanh_backward: dx[i] = dy[i] * ((1 - y[i]) * (1 + y[i])); y is the saved tanh output.
// Contract: grid-stride loop over n contiguous elements, every dx[i] written.
// Reference: xp forward of the primitive tanh_backward in gpugrad/primitives/elementwise_math.py and its rounding rule:
// (1 - y) * (1 + y), then dy times it, in float64 for float and double alike, rounded once to T, and
// a zero of its sign where that is below T's smallest normal number.

#include "expressions.cuh"  // widened() and flushed<T>(): the rounding rule

template <typename T>
__global__ void tanh_backward(T* dx, const T* dy, const T* y, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const double w = widened(y[i]);
        dx[i] = flushed<T>(__dmul_rn(widened(dy[i]), __dmul_rn(__dsub_rn(1.0, w), __dadd_rn(w, 1.0))));
    }
}

template __global__ void tanh_backward<float>(float*, const float*, const float*, long long);
template __global__ void tanh_backward<double>(double*, const double*, const double*, long long);
