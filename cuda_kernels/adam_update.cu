// adam_update: one Adam/AdamW step in place for n contiguous elements of a variable and its slots.
//   p -= decay * p                        (AdamW: decay = lr * weight_decay; skipped when 0, for Adam)
//   m += (1 - beta_1) * (g - m)
//   v += (1 - beta_2) * (g * g - v)
//   amsgrad: vhat = max(vhat, v) and vhat replaces v below (else vhat unused: the launcher passes v)
//   p -= alpha * m / (sqrt(v) + epsilon),  alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
// Contract: grid-stride loop over n elements, each read and written by one thread; alpha, 1 - beta_1,
// 1 - beta_2, epsilon and decay are computed in Python double as the reference does, then rounded to T.
// Reference: Backend.adam_update in gpugrad/backend.py, with the same operations in the same order,
// each rounded to T as NumPy does; max propagates NaN as numpy.maximum.

// a * b rounded on its own: nvcc and NVRTC fuse a * b + c into one FMA by default, NumPy never does.
__device__ inline float rounded_product(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double rounded_product(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float square_root(float x) { return sqrtf(x); }
__device__ inline double square_root(double x) { return sqrt(x); }

template <typename T>
__global__ void adam_update(T* param, const T* grad, T* m, T* v, T* vhat, long long n, T alpha,
                            T one_minus_beta_1, T one_minus_beta_2, T epsilon, T decay, int amsgrad) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T g = grad[i];
        T p = param[i];
        if (decay != T(0)) {
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

template __global__ void adam_update<float>(float*, const float*, float*, float*, float*, long long, float, float,
                                            float, float, float, int);
template __global__ void adam_update<double>(double*, const double*, double*, double*, double*, long long, double,
                                             double, double, double, double, int);
