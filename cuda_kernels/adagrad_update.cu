// adagrad_update: one Adagrad step in place for n contiguous elements of a variable and its
// accumulator: acc += g * g;  p -= lr * g / sqrt(acc + epsilon).
// Contract: grid-stride loop over n elements, each read and written by one thread; lr and epsilon
// are the Python floats of the reference rounded to T. Reference: Backend.adagrad_update in
// gpugrad/backend.py, with the same operations in the same order, each rounded to T as NumPy does.

// a * b rounded on its own: nvcc and NVRTC fuse a * b + c into one FMA by default, NumPy never does.
__device__ inline float rounded_product(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double rounded_product(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float square_root(float x) { return sqrtf(x); }
__device__ inline double square_root(double x) { return sqrt(x); }

template <typename T>
__global__ void adagrad_update(T* param, const T* grad, T* accumulator, long long n, T lr, T epsilon) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T g = grad[i];
        const T acc = accumulator[i] + rounded_product(g, g);
        accumulator[i] = acc;
        param[i] = param[i] - rounded_product(lr, g) / square_root(acc + epsilon);
    }
}

template __global__ void adagrad_update<float>(float*, const float*, float*, long long, float, float);
template __global__ void adagrad_update<double>(double*, const double*, double*, long long, double, double);
