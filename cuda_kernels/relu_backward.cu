// relu_backward: dx[i] = dy[i] where y[i] > 0, else dy[i] * 0; y is the saved relu output.
// Contract: grid-stride loop over n contiguous elements, every dx[i] written.
// Reference: xp forward of the primitive relu_backward in gpugrad/primitives.py, dy * (y > 0):
// a multiplication by the 0/1 mask rather than a select, so that a NaN or infinite dy where
// y <= 0 gives NaN and a negative dy gives -0, bit for bit as NumPy (and TensorFlow's ReluGrad).

template <typename T>
__global__ void relu_backward(T* dx, const T* dy, const T* y, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dx[i] = dy[i] * (y[i] > T(0) ? T(1) : T(0));
    }
}

template __global__ void relu_backward<float>(float*, const float*, const float*, long long);
template __global__ void relu_backward<double>(double*, const double*, const double*, long long);
