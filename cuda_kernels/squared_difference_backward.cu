// squared_difference_backward: dx[i] = 2 * dy[i] * (x[i] - y[i]), the gradient of (x - y)^2
// with respect to x (the one with respect to y is its negative).
// Contract: grid-stride loop over n contiguous elements, every dx[i] written.
// Reference: xp forward of the primitive squared_difference_backward in gpugrad/primitives.py,
// 2 * dy * (x - y) evaluated left to right in T, as NumPy does.

template <typename T>
__global__ void squared_difference_backward(T* dx, const T* dy, const T* x, const T* y, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dx[i] = T(2) * dy[i] * (x[i] - y[i]);
    }
}

template __global__ void squared_difference_backward<float>(float*, const float*, const float*, const float*,
                                                            long long);
template __global__ void squared_difference_backward<double>(double*, const double*, const double*, const double*,
                                                             long long);
