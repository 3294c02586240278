// square_backward: dx[i] = 2 * dy[i] * x[i]; x is the input of square.
// Contract: grid-stride loop over n contiguous elements, every dx[i] written.
// Reference: xp forward of the primitive square_backward in gpugrad/primitives/arithmetic.py and its rounding
// rule: 2 * dy, then times x, in float64 for float and double alike, rounded once to T, and a zero of
// its sign where that is below T's smallest normal number.

#include "expressions.cuh"  // widened() and flushed<T>(): the rounding rule

template <typename T>
__global__ void square_backward(T* dx, const T* dy, const T* x, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dx[i] = flushed<T>(__dmul_rn(__dmul_rn(2.0, widened(dy[i])), widened(x[i])));
    }
}

template __global__ void square_backward<float>(float*, const float*, const float*, long long);
template __global__ void square_backward<double>(double*, const double*, const double*, long long);
