// bias_gradient: column sums of a C-contiguous (rows, cols) matrix x, the gradient of a dense
// layer's bias: out[c] = sum over r of x[r * cols + c].
// Reference: reduce_sum(x, axis=(0,)) in gpugrad/primitives/reductions.py; equal up to rounding, since the
// additions run in another (fixed) order. No atomics, so a result repeats bit for bit on one device.
//
// Kernel: bias_gradient<T>(T* out, const T* x, long long rows, long long cols), cols >= 1, one
// pass of a two-pass reduction. Launch it on a grid (tiles, blocks) of 1-D blocks of B threads
// (B <= 1024, each pass may use its own) with B * sizeof(T) bytes of dynamic shared memory, where
//   width = min(cols, B), lanes = B / width, tiles = ceil(cols / width).
// Thread t of a block reads column blockIdx.x * width + t % width (when that is < cols) in the rows
// r = lanes * (blockIdx.y + k * gridDim.y) + t / width, k = 0, 1, ...: the lanes * width threads
// read lanes whole rows (or a width-wide slice of one) at once, consecutive threads reading
// consecutive addresses, so the matrix streams from memory once, at near copy bandwidth.
// Each thread keeps 32 bytes of partial sums (8 floats or 4 doubles, loads in flight), then the
// lanes of a column are added in a fixed tree in shared memory, and block (x, y) writes its sums
// to row blockIdx.y of out, which is (gridDim.y, cols): every element of it is written, zeros
// when rows = 0.
// Pass 1 runs on the matrix with gridDim.y = blocks and writes a (blocks, cols) workspace; pass 2
// runs on that workspace as a (blocks, cols) matrix with gridDim.y = 1 and writes out (cols,).
// With blocks = 1 (small matrices), pass 1 writes out directly and is the only launch.

// At most 32 registers a thread (64K registers / (2 blocks * 1024 threads)), so that 2048 threads
// fit a multiprocessor: the first pass's grid, as many blocks of 256 as the device runs at once,
// is then one wave with no tail.
template <typename T>
__global__ void __launch_bounds__(1024, 2) bias_gradient(T* out, const T* x, long long rows, long long cols) {
    constexpr int UNROLL = 32 / sizeof(T);  // independent loads in flight per thread
    extern __shared__ double bias_gradient_shared[];  // double: aligned for float and double
    T* lane_sums = reinterpret_cast<T*>(bias_gradient_shared);

    const long long width = cols < (long long)blockDim.x ? cols : (long long)blockDim.x;
    const int lanes = (int)(blockDim.x / width);
    const int lane = (int)(threadIdx.x / width);
    const long long column = (long long)blockIdx.x * width + threadIdx.x % width;
    const bool active = lane < lanes && column < cols;

    T sum = T(0);
    if (active) {
        const long long first = (long long)blockIdx.y * lanes + lane;  // the first row this thread reads
        const long long step = (long long)gridDim.y * lanes;           // rows between two of its reads
        long long count = first < rows ? (rows - 1 - first) / step + 1 : 0;
        const long long element_step = step * cols;
        const T* element = x + first * cols + column;
        T partial[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            partial[u] = T(0);
        }
        for (; count >= UNROLL; count -= UNROLL, element += UNROLL * element_step) {
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                partial[u] += element[u * element_step];
            }
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            if (u < count) {
                partial[u] += element[u * element_step];
            }
        }
#pragma unroll
        for (int half = UNROLL / 2; half > 0; half /= 2) {
#pragma unroll
            for (int u = 0; u < half; ++u) {
                partial[u] += partial[u + half];
            }
        }
        sum = partial[0];
    }

    // Add the lanes of each column in a fixed tree: lane l takes lane l + s at distance s = 1, 2, 4, ...
    lane_sums[threadIdx.x] = sum;
    __syncthreads();
    for (int s = 1; s < lanes; s *= 2) {
        if (active && lane % (2 * s) == 0 && lane + s < lanes) {
            lane_sums[threadIdx.x] += lane_sums[threadIdx.x + s * width];
        }
        __syncthreads();
    }
    if (active && lane == 0) {
        out[(long long)blockIdx.y * cols + column] = lane_sums[threadIdx.x];
    }
}

template __global__ void bias_gradient<float>(float*, const float*, long long, long long);
template __global__ void bias_gradient<double>(double*, const double*, long long, long long);
