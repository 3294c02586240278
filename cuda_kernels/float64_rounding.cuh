// Shared by the fused backward kernels, each of which includes it once: gpugrad/kernels.py inlines it
// into the kernel's source before compiling, and nvcc finds it beside the .cu files.
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
