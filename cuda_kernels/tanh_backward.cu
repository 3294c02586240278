// tanh_backward: dx[i] = dy[i] * (1 - y[i] * y[i]); y is the saved tanh output.
// Contract: grid-stride loop over n contiguous elements, every dx[i] written.
// Reference: xp forward of the primitive tanh_backward in gpugrad/primitives.py,
// dy * (1 - y * y) in T with y * y rounded before the subtraction, as NumPy does.

// a * b rounded on its own: nvcc and NVRTC fuse a * b + c into one FMA by default, NumPy never does.
__device__ inline float rounded_product(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double rounded_product(double a, double b) { return __dmul_rn(a, b); }

template <typename T>
__global__ void tanh_backward(T* dx, const T* dy, const T* y, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dx[i] = dy[i] * (T(1) - rounded_product(y[i], y[i]));
    }
}

template __global__ void tanh_backward<float>(float*, const float*, const float*, long long);
template __global__ void tanh_backward<double>(double*, const double*, const double*, long long);
