// The helpers of the optimizers' update kernels (cuda_kernels/*_update.cu), defined once: each
// update kernel includes this header, and a generated kernel that includes several update kernels
// (gpugrad/update_batches.py) gets one copy through the guard. gpugrad/kernels.py inlines it into
// the source it compiles; nvcc finds it beside the .cu files.

#ifndef GG_UPDATE_COMMON_CUH
#define GG_UPDATE_COMMON_CUH

// a * b rounded on its own: nvcc and NVRTC fuse a * b + c into one FMA by default, NumPy never does.
__device__ inline float rounded_product(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double rounded_product(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float square_root(float x) { return sqrtf(x); }
__device__ inline double square_root(double x) { return sqrt(x); }

#endif  // GG_UPDATE_COMMON_CUH
