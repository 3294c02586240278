// relu_backward: dx[i] = dy[i] where y[i] > 0, else dy[i] * 0; y is the saved relu output.
// Contract: grid-stride loop over n contiguous elements, every dx[i] written.
// Reference: xp forward of the primitive relu_backward in gpugrad/primitives/elementwise_math.py and its rounding rule,
// dy * (y > 0): a multiplication by the 0/1 mask rather than a select, so that a NaN or infinite dy
// where y <= 0 gives NaN and a negative dy gives -0, bit for bit as NumPy (and TensorFlow's ReluGrad);
// exact, then a zero of its sign where that is below T's smallest normal number.

#include "expressions.cuh"  // widened() and flushed<T>(): the rounding rule

template <typename T>
__global__ void relu_backward(T* dx, const T* dy, const T* y, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dx[i] = flushed<T>(__dmul_rn(widened(dy[i]), widened(y[i]) > 0.0 ? 1.0 : 0.0));
    }
}

template __global__ void relu_backward<float>(float*, const float*, const float*, long long);
template __global__ void relu_backward<double>(double*, const double*, const double*, long long);
