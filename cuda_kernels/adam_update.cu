// adam_update: one Adam/AdamW step in place for n contiguous elements of a variable and its slots.
//   p -= decay * p                        (AdamW, decoupled != 0: decay = lr * weight_decay)
//   m += (1 - beta_1) * (g - m)
//   v += (1 - beta_2) * (g * g - v)
//   amsgrad: vhat = max(vhat, v) and vhat replaces v below (else vhat unused: the launcher passes v)
//   p -= alpha * m / (sqrt(v) + epsilon),  alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
// Contract: grid-stride loop over n elements, each read and written by one thread. alpha and decay
// change every step: they are read from device memory, scalars[0] and scalars[1] (doubles computed
// in Python as the reference does), so that a captured CUDA graph sees each step's values; 1 - beta_1,
// 1 - beta_2 and epsilon are fixed. All are rounded to T.
// Reference: the primitive adam_update in gpugrad/primitives/updates.py, with the same operations in
// the same order, each rounded to T as NumPy does; max propagates NaN as numpy.maximum.

// a * b rounded on its own: nvcc and NVRTC fuse a * b + c into one FMA by default, NumPy never does.
__device__ inline float rounded_product(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double rounded_product(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float square_root(float x) { return sqrtf(x); }
__device__ inline double square_root(double x) { return sqrt(x); }

template <typename T>
__global__ void adam_update(T* param, const T* grad, T* m, T* v, T* vhat, const double* scalars, long long n,
                            T one_minus_beta_1, T one_minus_beta_2, T epsilon, int decoupled, int amsgrad) {
    const T alpha = (T)scalars[0];
    const T decay = (T)scalars[1];
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T g = grad[i];
        T p = param[i];
        if (decoupled) {
            p = p - rounded_product(decay, p);
        }
        const T m_new = m[i] + rounded_product(one_minus_beta_1, g - m[i]);
        const T v_old = v[i];
        const T v_new = v_old + rounded_product(one_minus_beta_2, rounded_product(g, g) - v_old);
        m[i] = m_new;
        v[i] = v_new;
        T second_moment = v_new;
        if (amsgrad) {
            const T h = vhat[i];
            second_moment = (h >= v_new || h != h) ? h : v_new;  // numpy.maximum: NaN wins
            vhat[i] = second_moment;
        }
        param[i] = p - rounded_product(alpha, m_new) / (square_root(second_moment) + epsilon);
    }
}

template __global__ void adam_update<float>(float*, const float*, float*, float*, float*, const double*, long long,
                                            float, float, float, int, int);
template __global__ void adam_update<double>(double*, const double*, double*, double*, double*, const double*,
                                             long long, double, double, double, int, int);
