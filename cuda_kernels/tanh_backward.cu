// tanh_backward: dx[i] = dy[i] * ((1 - y[i]) * (1 + y[i])); y is the saved tanh output.
// Contract: grid-stride loop over n contiguous elements, every dx[i] written.
// Reference: xp forward of the primitive tanh_backward in gpugrad/primitives.py and its rounding rule:
// (1 - y) * (1 + y), then dy times it, in float64 for float and double alike, rounded once to T, and
// a zero of its sign where that is below T's smallest normal number.

// The reference's float64 arithmetic: float inputs widened exactly, each operation rounded on its own
// (nvcc and NVRTC would fuse a * b + c into one FMA), the result rounded once to T and flushed.
// CuPy compiles with -ftz=true, which would read a subnormal float as zero when converting it and may
// flush a result that rounds up to FLT_MIN, so neither conversion is left to the hardware.
__device__ inline double widened(double x) { return x; }
__device__ inline double widened(float x) {
    const int bits = __float_as_int(x);
    if (bits & 0x7f800000) {
        return (double)x;  // normal, infinite or NaN: exact under -ftz=true too
    }
    const double magnitude = (double)(bits & 0x007fffff) * 0x1p-149;  // zero or subnormal
    return bits < 0 ? -magnitude : magnitude;
}

// r rounded to T, then a zero of its sign if that is below T's smallest normal number.
template <typename T> __device__ T flushed(double r);
template <> __device__ inline double flushed<double>(double r) { return fabs(r) < 0x1p-1022 ? copysign(0.0, r) : r; }
template <> __device__ inline float flushed<float>(double r) {
    const double magnitude = fabs(r);
    if (magnitude < 0x1p-126 - 0x1p-150) {  // below the midpoint of FLT_MIN and the subnormal under it
        r = copysign(0.0, r);
    } else if (magnitude < 0x1p-126) {  // rounds up to FLT_MIN (the tie too: its significand is even)
        r = copysign(0x1p-126, r);
    }
    return __double2float_rn(r);
}

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
