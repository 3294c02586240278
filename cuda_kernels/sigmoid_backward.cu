// sigmoid_backward: dx[i] = dy[i] * y[i] * (1 - y[i]); y is the saved sigmoid output.
// Contract: grid-stride loop over n contiguous elements, every dx[i] written.
// Reference: xp forward of the primitive sigmoid_backward in gpugrad/primitives.py,
// dy * y * (1 - y) evaluated left to right in T, as NumPy does.

template <typename T>
__global__ void sigmoid_backward(T* dx, const T* dy, const T* y, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dx[i] = dy[i] * y[i] * (T(1) - y[i]);
    }
}

template __global__ void sigmoid_backward<float>(float*, const float*, const float*, long long);
template __global__ void sigmoid_backward<double>(double*, const double*, const double*, long long);
