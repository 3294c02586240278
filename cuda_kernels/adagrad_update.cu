// adagrad_update: one Adagrad step in place for n contiguous elements of a variable and its
// accumulator: acc += g * g;  p -= lr * g / sqrt(acc + epsilon).
// Contract: grid-stride loop over n elements, each read and written by one thread. lr is read from
// device memory, scalars[0] (a double, the value of this step), so that a captured CUDA graph sees
// each step's value; epsilon is the Python float of the reference; both rounded to T.
// Reference: the primitive adagrad_update in gpugrad/primitives/updates.py, with the same
// operations in the same order, each rounded to T as NumPy does.

// a * b rounded on its own: nvcc and NVRTC fuse a * b + c into one FMA by default, NumPy never does.
__device__ inline float rounded_product(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double rounded_product(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float square_root(float x) { return sqrtf(x); }
__device__ inline double square_root(double x) { return sqrt(x); }

template <typename T>
__global__ void adagrad_update(T* param, const T* grad, T* accumulator, const double* scalars, long long n,
                               T epsilon) {
    const T lr = (T)scalars[0];
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T g = grad[i];
        const T acc = accumulator[i] + rounded_product(g, g);
        accumulator[i] = acc;
        param[i] = param[i] - rounded_product(lr, g) / square_root(acc + epsilon);
    }
}

template __global__ void adagrad_update<float>(float*, const float*, float*, const double*, long long, float);
template __global__ void adagrad_update<double>(double*, const double*, double*, const double*, long long, double);
