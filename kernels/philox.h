// Philox4x32-10, the counter-based generator behind cuRAND's CURAND_RNG_PSEUDO_PHILOX4_32_10,
// written so the CPU backend draws exactly the numbers the CUDA kernels draw with cuRAND.
//
// Convention of the project: a random stream is a 64-bit key (Context's random_stream_key of
// seed, purpose and step). Element i of a stream uses Philox block i / 4, output i % 4. On the
// GPU that block is `curand_init(key, /*subsequence=*/i / 4, /*offset=*/0, &state)` followed by
// `curand4(&state)` (or curand_uniform4): cuRAND then sets key = (lo, hi) of `key` and
// counter = (0, 0, lo, hi) of the subsequence, which is what philox_block() takes below.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SP_HOST_DEVICE __host__ __device__
#else
#define SP_HOST_DEVICE
#endif

namespace sp {

struct PhiloxBlock {
    uint32_t v[4];
};

SP_HOST_DEVICE inline PhiloxBlock philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                                uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; ++round) {
        uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
        uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
        uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
        uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return {{c0, c1, c2, c3}};
}

// The four 32-bit outputs of block `block` of stream `key` (cuRAND's curand4 after
// curand_init(key, block, 0)).
SP_HOST_DEVICE inline PhiloxBlock philox_block(uint64_t key, uint64_t block) {
    return philox4x32_10(0u, 0u, static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                         static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32));
}

// Output k (0..3) of a block, with selects rather than a run-time array index, so device code
// keeps the block in registers.
SP_HOST_DEVICE inline uint32_t philox_output(const PhiloxBlock& b, uint64_t k) {
    return k == 0 ? b.v[0] : k == 1 ? b.v[1] : k == 2 ? b.v[2] : b.v[3];
}

// cuRAND's conversion to a float in (0, 1]: x * 2^-32 + 2^-33 (the product is exact, so a
// fused multiply-add on the GPU gives the same float).
SP_HOST_DEVICE inline float philox_uniform(uint32_t x) {
    const float two_pow_minus_32 = 2.3283064e-10f;
    return x * two_pow_minus_32 + (two_pow_minus_32 / 2.0f);
}

// Uniform number i of stream `key`.
SP_HOST_DEVICE inline float stream_uniform(uint64_t key, uint64_t i) {
    return philox_uniform(philox_output(philox_block(key, i / 4), i % 4));
}

}  // namespace sp
