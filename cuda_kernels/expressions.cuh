// The helpers of the primitives' scalar expressions (op.expression.c, gpugrad/dispatch.py) and of
// the fused backward kernels (cuda_kernels/*_backward.cu), which include this header once:
// gpugrad/kernels.py inlines it into the kernel's source before compiling, nvcc finds it beside
// the .cu files. It needs no other header, so it compiles as it stands with nvcc and NVRTC for the
// device and with g++ or clang++ for the host (the host test harness of tests/test_expressions.py,
// built with -ffp-contract=off): every helper is GG_HD, and the device intrinsics it calls have
// host counterparts (compiler builtins) behind __CUDA_ARCH__.
//
// Semantics: NumPy's, element by element, for bool, the integer types, float and double (float16
// has no C type here), the same on the host and the device. In particular:
// - Integer add, subtract, multiply, negative, abs and power wrap around as NumPy's do (computed
//   in an unsigned type, so there is no signed overflow).
// - Products are rounded on their own (__dmul_rn on the device), so that no compiler fuses an
//   expression's product with a later addition into an FMA, which NumPy never does.
// - maximum and minimum propagate NaN and return their second operand on ties (+0 and -0), as
//   NumPy's x86 loops do; clip is minimum(maximum(x, lo), hi).
// - Float (float32) values never meet the hardware's float arithmetic, which CuPy compiles with
//   flush-to-zero (it appends -ftz=true to every compile's options, so a kernel cannot turn it
//   off): subnormal operands would read as zero and subnormal results would be flushed. A float
//   operation runs in double on widened() operands and its result is rounded to float by
//   gg_float(), by hand where it is subnormal. That is NumPy's float result: the double sum,
//   difference or product of two floats is exact, and rounding a double quotient or square root
//   to float agrees with rounding the exact one (53 >= 2 * 24 + 2 bits). Sign changes work on the
//   bits; comparisons compare the widened values; conversions go through gg_cast<T>.
// - The rounding rule of gpugrad/primitives/rounding.py for the activations (relu, tanh,
//   sigmoid, softplus) and the fused backward ops: float64 arithmetic from widened inputs, each
//   operation rounded on its own, the result rounded once to T by flushed<T>.
// - Transcendental functions (exp, log, log1p, sin, cos, tanh, pow) are the platform's double
//   math library (libm on the host, CUDA's on the device), for float results too (then rounded
//   once to float): within an ulp or two of NumPy's own SIMD functions, not bit for bit.
// Expressions convert with gg_cast<T>(x), never a C cast, and call these helpers for arithmetic
// on values that may be floats.

#ifndef GG_EXPRESSIONS_CUH
#define GG_EXPRESSIONS_CUH

#ifdef __CUDACC__
#define GG_HD __host__ __device__
#else
#define GG_HD
#endif

// ---------------------------------------------------------------------------------------
// The double math library: CUDA's on the device, the compiler's builtins (libm) on the host.

#ifdef __CUDA_ARCH__
#define GG_LIBM(name) \
    GG_HD inline double gg_libm_##name(double x) { return name(x); }
#else
#define GG_LIBM(name) \
    GG_HD inline double gg_libm_##name(double x) { return __builtin_##name(x); }
#endif
GG_LIBM(sqrt)
GG_LIBM(exp)
GG_LIBM(log)
GG_LIBM(log1p)
GG_LIBM(sin)
GG_LIBM(cos)
GG_LIBM(tanh)
GG_LIBM(fabs)
GG_LIBM(rint)
#undef GG_LIBM

#ifdef __CUDA_ARCH__
GG_HD inline double gg_libm_pow(double x, double y) { return pow(x, y); }
GG_HD inline double gg_copysign(double x, double y) { return copysign(x, y); }
GG_HD inline double gg_inf() { return __longlong_as_double(0x7ff0000000000000LL); }
GG_HD inline double gg_nan() { return __longlong_as_double(0x7ff8000000000000LL); }
GG_HD inline int gg_float_bits(float x) { return __float_as_int(x); }
GG_HD inline float gg_bits_float(int bits) { return __int_as_float(bits); }
#else
GG_HD inline double gg_libm_pow(double x, double y) { return __builtin_pow(x, y); }
GG_HD inline double gg_copysign(double x, double y) { return __builtin_copysign(x, y); }
GG_HD inline double gg_inf() { return __builtin_inf(); }
GG_HD inline double gg_nan() { return __builtin_nan(""); }
GG_HD inline int gg_float_bits(float x) {
    int bits;
    __builtin_memcpy(&bits, &x, sizeof bits);
    return bits;
}
GG_HD inline float gg_bits_float(int bits) {
    float x;
    __builtin_memcpy(&x, &bits, sizeof x);
    return x;
}
#endif
GG_HD inline double gg_fabs(double x) { return gg_libm_fabs(x); }

// float64 operations rounded on their own: never contracted into an FMA.
#ifdef __CUDA_ARCH__
GG_HD inline double gg_dadd(double a, double b) { return __dadd_rn(a, b); }
GG_HD inline double gg_dsub(double a, double b) { return __dsub_rn(a, b); }
GG_HD inline double gg_dmul(double a, double b) { return __dmul_rn(a, b); }
#else
GG_HD inline double gg_dadd(double a, double b) { return a + b; }
GG_HD inline double gg_dsub(double a, double b) { return a - b; }
GG_HD inline double gg_dmul(double a, double b) { return a * b; }
#endif

// ---------------------------------------------------------------------------------------
// The rounding rule: float inputs widened exactly, float64 operations, the result rounded once to
// T and flushed. CuPy compiles with -ftz=true, which would read a subnormal float as zero when
// converting it and may flush a result that rounds up to FLT_MIN, so neither conversion is left to
// the hardware on the device.

GG_HD inline double widened(double x) { return x; }
GG_HD inline double widened(float x) {
#ifdef __CUDA_ARCH__
    const int bits = __float_as_int(x);
    if (bits & 0x7f800000) {
        return (double)x;  // normal, infinite or NaN: exact under -ftz=true too
    }
    const double magnitude = (double)(bits & 0x007fffff) * 0x1p-149;  // zero or subnormal
    return bits < 0 ? -magnitude : magnitude;
#else
    return (double)x;  // exact on the host
#endif
}
template <typename X> GG_HD inline double widened(X x) { return (double)x; }  // bool and integers

// ---------------------------------------------------------------------------------------
// Conversions that keep float subnormals under flush-to-zero

// r rounded to float (to nearest, ties to even), subnormal results included, whatever the
// device's flush-to-zero mode.
GG_HD inline float gg_float(double r) {
#ifdef __CUDA_ARCH__
    const double magnitude = gg_fabs(r);
    if (magnitude < 0x1p-126) {  // a float subnormal or zero, or FLT_MIN rounded up to: a multiple of 2^-149
        const int units = (int)gg_libm_rint(magnitude * 0x1p149);  // exact scaling, then ties to even
        return gg_bits_float(__double_as_longlong(r) < 0 ? (int)(units | 0x80000000u) : units);
    }
    return __double2float_rn(r);  // normal, infinite or NaN
#else
    return (float)r;
#endif
}

// The value of x, exactly, for comparisons: floats widened, everything else unchanged.
template <typename X> GG_HD inline X gg_exact(X x) { return x; }
GG_HD inline double gg_exact(float x) { return widened(x); }

// x converted to To, as NumPy's astype: floats read by widened(), doubles rounded to float by
// gg_float() (integers convert to float in one rounding, never to a subnormal).
template <typename To, typename From> struct gg_converter {
    GG_HD static To apply(From x) { return (To)x; }
};
template <typename To> struct gg_converter<To, float> {
    GG_HD static To apply(float x) { return (To)widened(x); }
};
template <> struct gg_converter<float, float> {
    GG_HD static float apply(float x) { return x; }
};
template <> struct gg_converter<float, double> {
    GG_HD static float apply(double x) { return gg_float(x); }
};
template <typename To, typename From> GG_HD inline To gg_cast(From x) { return gg_converter<To, From>::apply(x); }

// r rounded to T, then, for float and double, a zero of its sign if that is below T's smallest
// normal number. Integer and bool T: r converted as NumPy casts float64 to them.
template <typename T> GG_HD inline T flushed(double r) { return (T)r; }
template <> GG_HD inline double flushed<double>(double r) {
    return gg_fabs(r) < 0x1p-1022 ? gg_copysign(0.0, r) : r;
}
template <> GG_HD inline float flushed<float>(double r) {
    const double magnitude = gg_fabs(r);
    if (magnitude < 0x1p-126 - 0x1p-150) {  // below the midpoint of FLT_MIN and the subnormal under it
        r = gg_copysign(0.0, r);
    } else if (magnitude < 0x1p-126) {  // rounds up to FLT_MIN (the tie too: its significand is even)
        r = gg_copysign(0x1p-126, r);
    }
#ifdef __CUDA_ARCH__
    return __double2float_rn(r);
#else
    return (float)r;
#endif
}

// ---------------------------------------------------------------------------------------
// Arithmetic. gg_wrapping<T>::type is the type an integer operation on T runs in: unsigned, and
// no narrower than unsigned int (C would promote narrower types to int, where a product can
// overflow). Floats run in double (see the top), doubles as they are.

template <typename T> struct gg_wrapping { typedef T type; };  // bool
template <> struct gg_wrapping<signed char> { typedef unsigned int type; };
template <> struct gg_wrapping<unsigned char> { typedef unsigned int type; };
template <> struct gg_wrapping<short> { typedef unsigned int type; };
template <> struct gg_wrapping<unsigned short> { typedef unsigned int type; };
template <> struct gg_wrapping<int> { typedef unsigned int type; };
template <> struct gg_wrapping<unsigned int> { typedef unsigned int type; };
template <> struct gg_wrapping<long long> { typedef unsigned long long type; };
template <> struct gg_wrapping<unsigned long long> { typedef unsigned long long type; };

template <typename T> GG_HD inline T gg_add(T a, T b) {
    typedef typename gg_wrapping<T>::type W;
    return (T)((W)a + (W)b);
}
template <> GG_HD inline float gg_add<float>(float a, float b) { return gg_float(gg_dadd(widened(a), widened(b))); }
template <> GG_HD inline double gg_add<double>(double a, double b) { return gg_dadd(a, b); }

template <typename T> GG_HD inline T gg_subtract(T a, T b) {
    typedef typename gg_wrapping<T>::type W;
    return (T)((W)a - (W)b);
}
template <> GG_HD inline float gg_subtract<float>(float a, float b) {
    return gg_float(gg_dsub(widened(a), widened(b)));
}
template <> GG_HD inline double gg_subtract<double>(double a, double b) { return gg_dsub(a, b); }

template <typename T> GG_HD inline T gg_multiply(T a, T b) {
    typedef typename gg_wrapping<T>::type W;
    return (T)((W)a * (W)b);
}
template <> GG_HD inline float gg_multiply<float>(float a, float b) {
    return gg_float(gg_dmul(widened(a), widened(b)));
}
template <> GG_HD inline double gg_multiply<double>(double a, double b) { return gg_dmul(a, b); }

// True division (NumPy's divide of integers gives floats: their expressions divide in float or
// double).
template <typename T> GG_HD inline T gg_divide(T a, T b) { return a / b; }
template <> GG_HD inline float gg_divide<float>(float a, float b) { return gg_float(widened(a) / widened(b)); }

template <typename T> GG_HD inline T gg_negative(T x) { return gg_subtract((T)0, x); }
template <> GG_HD inline float gg_negative<float>(float x) {
    return gg_bits_float(gg_float_bits(x) ^ (int)0x80000000u);
}
template <> GG_HD inline double gg_negative<double>(double x) { return -x; }

template <typename T> GG_HD inline T gg_abs(T x) { return x < (T)0 ? gg_negative(x) : x; }
template <> GG_HD inline float gg_abs<float>(float x) { return gg_bits_float(gg_float_bits(x) & 0x7fffffff); }
template <> GG_HD inline double gg_abs<double>(double x) { return gg_fabs(x); }

// numpy.sign: -1, 0 (+0 for -0 too) or 1; NaN stays NaN.
template <typename T> GG_HD inline T gg_sign(T x) {
    return gg_exact(x) > 0 ? (T)1 : gg_exact(x) < 0 ? (T)-1 : gg_exact(x) == 0 ? (T)0 : x;
}

template <typename T> GG_HD inline T gg_squared_difference(T a, T b) {
    const T d = gg_subtract(a, b);
    return gg_multiply(d, d);
}

// numpy.maximum and numpy.minimum: NaN propagates; on ties (+0 and -0) the second operand.
template <typename T> GG_HD inline T gg_maximum(T a, T b) { return (gg_exact(a) > gg_exact(b) || a != a) ? a : b; }
template <typename T> GG_HD inline T gg_minimum(T a, T b) { return (gg_exact(a) < gg_exact(b) || a != a) ? a : b; }
template <typename T> GG_HD inline T gg_clip(T x, T lo, T hi) { return gg_minimum(gg_maximum(x, lo), hi); }

// The comparisons, on operands of one type (the inputs' promoted one).
template <typename T> GG_HD inline bool gg_equal(T a, T b) { return gg_exact(a) == gg_exact(b); }
template <typename T> GG_HD inline bool gg_not_equal(T a, T b) { return gg_exact(a) != gg_exact(b); }
template <typename T> GG_HD inline bool gg_less(T a, T b) { return gg_exact(a) < gg_exact(b); }
template <typename T> GG_HD inline bool gg_less_equal(T a, T b) { return gg_exact(a) <= gg_exact(b); }
template <typename T> GG_HD inline bool gg_greater(T a, T b) { return gg_exact(a) > gg_exact(b); }
template <typename T> GG_HD inline bool gg_greater_equal(T a, T b) { return gg_exact(a) >= gg_exact(b); }

// The math functions of float and double, floats through double.
#define GG_MATH(name)                                                                  \
    GG_HD inline double gg_##name(double x) { return gg_libm_##name(x); }              \
    GG_HD inline float gg_##name(float x) { return gg_float(gg_libm_##name(widened(x))); }
GG_MATH(sqrt)
GG_MATH(exp)
GG_MATH(log)
GG_MATH(log1p)
GG_MATH(sin)
GG_MATH(cos)
#undef GG_MATH

// numpy.power. Floats: NumPy's loop for a uniform exponent (a scalar) takes the fast paths
// below, by value; other exponents, and every exponent of an array of exponents, go to pow
// (NumPy's own SIMD pow, here the double math library's, rounded once for floats: within an ulp
// or two). Integers: repeated squaring with wraparound, as NumPy's loop; NumPy refuses negative
// exponents with an error, here they give 0.
template <typename T> GG_HD inline T gg_power(T x, T y) {
    if (y < (T)0) {
        return (T)0;
    }
    typedef typename gg_wrapping<T>::type W;
    W base = (W)x, result = (y & (T)1) ? (W)x : (W)1;
    for (T e = y >> 1; e > (T)0; e >>= 1) {
        base = base * base;
        if (e & (T)1) {
            result = result * base;
        }
    }
    return (T)result;
}
template <> GG_HD inline bool gg_power<bool>(bool x, bool y) { return y ? x : true; }
GG_HD inline double gg_double_power(double x, double y) {
    if (y == -1.0) return 1.0 / x;
    if (y == 0.0) return 1.0;
    if (y == 0.5) return gg_libm_sqrt(x);
    if (y == 1.0) return x;
    if (y == 2.0) return gg_dmul(x, x);
    return gg_libm_pow(x, y);
}
template <> GG_HD inline double gg_power<double>(double x, double y) { return gg_double_power(x, y); }
template <> GG_HD inline float gg_power<float>(float x, float y) {
    // 1/x, sqrt and x*x of floats, in double rounded once to float, are NumPy's float results.
    return gg_float(gg_double_power(widened(x), widened(y)));
}

// ---------------------------------------------------------------------------------------
// The activations and the fused backward ops under the rounding rule, result type T (float or
// double; integer T only where the primitive's forward allows it), each the same float64
// operations in the same order as its xp forward in gpugrad/primitives/.

// sigmoid and softplus clip x (in T) to [-bound, 40]; for double results, x below ln(DBL_MIN)
// never reaches exp (NumPy's slow subnormal path) and contributes 0: _saturation in
// gpugrad/primitives/elementwise_math.py, whose constants these are (tests/test_expressions.py
// checks that they agree).
#define GG_SATURATION_BOUND_64 708.4
#define GG_SATURATION_BOUND_32 700.0
#define GG_LOG_TINY_64 (-0x1.6232bdd7abcd2p+9)  // math.log(2.0 ** -1022)

template <typename T, typename X> GG_HD inline T gg_tanh_rounded(X x) {
    return flushed<T>(gg_libm_tanh(widened(x)));
}

// sigmoid's and softplus's common start: x clipped in T to [-bound, 40] and widened; for a
// double result, keep is 0 where that is below log(DBL_MIN) (and t is zeroed there), else 1.
template <typename T, typename X> GG_HD inline double gg_saturated(X x, double& keep) {
    const bool wide = sizeof(T) >= 8;
    const T v = gg_clip(gg_cast<T>(x), (T)-(wide ? GG_SATURATION_BOUND_64 : GG_SATURATION_BOUND_32), (T)40);
    double t = widened(v);
    keep = (!wide || t >= GG_LOG_TINY_64) ? 1.0 : 0.0;
    if (wide) {
        t = gg_dmul(t, keep);
    }
    return t;
}

template <typename T, typename X> GG_HD inline T gg_sigmoid(X x) {
    const bool wide = sizeof(T) >= 8;
    double keep;
    double t = gg_saturated<T>(x, keep);
    t = gg_libm_exp(t);
    const double u = gg_dadd(t, 1.0);
    if (wide) {
        t = gg_dmul(t, keep);
    }
    return flushed<T>(t / u);
}

template <typename T, typename X> GG_HD inline T gg_softplus(X x) {
    // max(max(v, 0) + log1p(e^-|v|), x), v = x clipped, times keep before the outer max.
    const bool wide = sizeof(T) >= 8;
    double keep;
    const double t = gg_saturated<T>(x, keep);
    double u = gg_maximum(t, 0.0);
    u = gg_dadd(u, gg_libm_log1p(gg_libm_exp(-gg_fabs(t))));
    if (wide) {
        u = gg_dmul(u, keep);
    }
    return flushed<T>(gg_maximum(u, widened(x)));
}

// relu: maximum(x, 0) in T, flushed (float and double).
template <typename T> GG_HD inline T gg_relu(T x) { return gg_maximum(x, (T)0); }
template <> GG_HD inline float gg_relu<float>(float x) { return flushed<float>(gg_maximum(widened(x), 0.0)); }
template <> GG_HD inline double gg_relu<double>(double x) { return flushed<double>(gg_maximum(x, 0.0)); }

// relu_backward: dy times the 0/1 mask y > 0 (NaN or infinite dy where y <= 0 gives NaN, a
// negative dy -0), flushed (float and double).
template <typename T, typename Y> GG_HD inline T gg_relu_backward(T dy, Y y) {
    return widened(y) > 0.0 ? dy : (T)0;
}
template <typename Y> GG_HD inline float gg_relu_backward(float dy, Y y) {
    return flushed<float>(gg_dmul(widened(dy), widened(y) > 0.0 ? 1.0 : 0.0));
}
template <typename Y> GG_HD inline double gg_relu_backward(double dy, Y y) {
    return flushed<double>(gg_dmul(dy, widened(y) > 0.0 ? 1.0 : 0.0));
}

// dy (1 - y) (1 + y): 1 - y y would cancel catastrophically as |y| nears 1.
template <typename T, typename D, typename Y> GG_HD inline T gg_tanh_backward(D dy, Y y) {
    const double w = widened(y);
    return flushed<T>(gg_dmul(widened(dy), gg_dmul(gg_dsub(1.0, w), gg_dadd(w, 1.0))));
}

// dy (1 - y) y
template <typename T, typename D, typename Y> GG_HD inline T gg_sigmoid_backward(D dy, Y y) {
    const double w = widened(y);
    return flushed<T>(gg_dmul(widened(dy), gg_dmul(gg_dsub(1.0, w), w)));
}

// 2 dy, then times x: 2 dy is exact.
template <typename T, typename D, typename X> GG_HD inline T gg_square_backward(D dy, X x) {
    return flushed<T>(gg_dmul(gg_dmul(2.0, widened(dy)), widened(x)));
}

// 2 dy times x - y.
template <typename T, typename D, typename X, typename Y>
GG_HD inline T gg_squared_difference_backward(D dy, X x, Y y) {
    return flushed<T>(gg_dmul(gg_dmul(2.0, widened(dy)), gg_dsub(widened(x), widened(y))));
}

#endif  // GG_EXPRESSIONS_CUH
