// square_backward: dx[i] = 2 * dy[i] * x[i]; x is the input of square.
// Contract: grid-stride loop over n contiguous elements, every dx[i] written.
// Reference: xp forward of the primitive square_backward in gpugrad/primitives.py,
// 2 * dy * x evaluated left to right in T, as NumPy does.

template <typename T>
__global__ void square_backward(T* dx, const T* dy, const T* x, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dx[i] = T(2) * dy[i] * x[i];
    }
}

template __global__ void square_backward<float>(float*, const float*, const float*, long long);
template __global__ void square_backward<double>(double*, const double*, const double*, long long);
