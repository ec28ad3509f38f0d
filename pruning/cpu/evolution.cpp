// CPU reference of the differential-evolution kernels (pruning/kernel_list.inc): the same
// Philox counters and the same word operators (kernels/evolution.h) as kernels/evolution.cu,
// so both backends build the same bits (counter layout in pruning/evolution.cpp).
#include <algorithm>

#include "kernels/evolution.h"
#include "kernels/philox.h"
#include "pruning/backends.h"

namespace sp::cpu {

namespace {

uint32_t* words_of(Buffer& b) { return static_cast<uint32_t*>(b.data()); }
const uint32_t* words_of(const Buffer& b) { return static_cast<const uint32_t*>(b.data()); }

// Uniforms of one stream read in increasing counter order, one Philox block per four.
class UniformReader {
public:
    explicit UniformReader(uint64_t key) : key_(key) {}
    float at(uint64_t counter) {
        const uint64_t b = counter / 4;
        if (b != block_) {
            block_ = b;
            bits_ = philox_block(key_, b);
        }
        return philox_uniform(bits_.v[counter % 4]);
    }

private:
    uint64_t key_;
    uint64_t block_ = ~uint64_t{0};
    PhiloxBlock bits_{};
};

// Bits of word w of member i where uniform (i·D + d) is <= p, for the units d of word w.
uint32_t draw_bits(UniformReader& reader, int64_t i, int64_t w, int64_t units, float p) {
    uint32_t bits = 0;
    const int64_t first = w * 32, last = std::min(first + 32, units);
    for (int64_t d = first; d < last; ++d)
        if (reader.at(static_cast<uint64_t>(i * units + d)) <= p) bits |= 1u << (d - first);
    return bits;
}

// out (units) = the bits of one member's row of words.
void unpack_row(const uint32_t* row, int64_t units, float* out) {
    for (int64_t d = 0; d < units; ++d) out[d] = static_cast<float>((row[d / 32] >> (d % 32)) & 1u);
}

}  // namespace

void evolution_initialise(Context&, const PackedShape& shape, uint64_t key, Buffer& words) {
    const int64_t wpm = shape.words();
    uint32_t* out = words_of(words);
    for (int64_t i = 0; i < shape.members; ++i) {
        UniformReader reader(key);
        for (int64_t w = 0; w < wpm; ++w) out[i * wpm + w] = draw_bits(reader, i, w, shape.units, 0.5f);
    }
}

void evolution_make_trials(Context&, const PackedShape& shape, const TrialDraws& draws, const Buffer& members,
                           Buffer& trials) {
    const int64_t p = shape.members, units = shape.units, wpm = shape.words();
    const int rule = draws.rule == MutationRule::reference ? 0 : 1;
    const uint32_t* x = words_of(members);
    uint32_t* out = words_of(trials);
    for (int64_t i = 0; i < p; ++i) {
        const PhiloxBlock pick = philox_block(draws.pick_key, static_cast<uint64_t>(i));
        int64_t r[3];
        kernels::evolution_pick_partners(p, i, philox_uniform(pick.v[0]), philox_uniform(pick.v[1]),
                                         philox_uniform(pick.v[2]), r);
        UniformReader flags(draws.flag_key), cross(draws.cross_key);
        for (int64_t w = 0; w < wpm; ++w) {
            const uint32_t flag = draw_bits(flags, i, w, units, draws.mutation_rate);
            const uint32_t take = draw_bits(cross, i, w, units, draws.crossover);
            const uint32_t v = kernels::evolution_mutate_word(rule, x[r[0] * wpm + w], x[r[1] * wpm + w],
                                                              x[r[2] * wpm + w], flag);
            out[i * wpm + w] = kernels::evolution_cross_word(v, x[i * wpm + w], take) &
                               kernels::evolution_valid_bits(static_cast<size_t>(w), static_cast<size_t>(units));
        }
    }
}

void evolution_repair(Context&, const PackedShape& shape, const Buffer& segments, int64_t n_segments,
                      Buffer& words) {
    const int64_t wpm = shape.words();
    const int64_t* table = static_cast<const int64_t*>(segments.data());
    for (int64_t i = 0; i < shape.members; ++i) {
        uint32_t* row = words_of(words) + i * wpm;
        for (int64_t s = 0; s < n_segments; ++s) {
            const int64_t seg_offset = table[3 * s], seg_size = table[3 * s + 1], min_kept = table[3 * s + 2];
            if (seg_size == 0) continue;
            const size_t offset = static_cast<size_t>(seg_offset), size = static_cast<size_t>(seg_size);
            const int64_t w0 = seg_offset / 32, w1 = (seg_offset + seg_size + 31) / 32;
            int64_t kept = 0;
            for (int64_t w = w0; w < w1; ++w)
                kept += __builtin_popcount(row[w] & kernels::evolution_range_bits(static_cast<size_t>(w), offset, size));
            for (int64_t w = w0; w < w1 && kept < min_kept; ++w) {
                uint32_t free_bits = ~row[w] & kernels::evolution_range_bits(static_cast<size_t>(w), offset, size);
                while (free_bits != 0 && kept < min_kept) {
                    const uint32_t lowest = free_bits & (~free_bits + 1u);
                    row[w] |= lowest;
                    free_bits ^= lowest;
                    ++kept;
                }
            }
        }
    }
}

void evolution_unpack(Context&, const PackedShape& shape, const Buffer& words, Tensor& out) {
    const int64_t wpm = shape.words();
    for (int64_t i = 0; i < shape.members; ++i)
        unpack_row(words_of(words) + i * wpm, shape.units, out.data() + i * shape.units);
}

void evolution_select(Context&, const PackedShape& shape, const Buffer& trials, const Tensor& trial_energies,
                      Buffer& members, Tensor& energies, Buffer& accepted) {
    const int64_t wpm = shape.words();
    uint32_t* x = words_of(members);
    const uint32_t* t = words_of(trials);
    uint32_t* flags = static_cast<uint32_t*>(accepted.data());
    float* e = energies.data();
    const float* te = trial_energies.data();
    for (int64_t i = 0; i < shape.members; ++i) {
        const bool take = te[i] < e[i];  // strictly lower wins; NaN never does
        flags[i] = take ? 1u : 0u;
        if (!take) continue;
        e[i] = te[i];
        std::copy(t + i * wpm, t + (i + 1) * wpm, x + i * wpm);
    }
}

void evolution_best_member(Context&, const PackedShape& shape, const Buffer& members, const Tensor& energies,
                           Tensor& out) {
    const size_t best = kernels::evolution_argmin_index(energies.data(), static_cast<size_t>(shape.members));
    unpack_row(words_of(members) + best * static_cast<size_t>(shape.words()), shape.units, out.data());
}

EvolutionCounts evolution_counts(Context&, const PackedShape& shape, const Buffer& members, const Tensor& energies) {
    const int64_t p = shape.members, wpm = shape.words();
    const uint32_t* words = words_of(members);
    EvolutionCounts c;
    c.best_member = static_cast<int64_t>(kernels::evolution_argmin_index(energies.data(), static_cast<size_t>(p)));
    // Σ over pairs of the Hamming distance = Σ over units of n (P - n), n = members with the unit set.
    for (int64_t w = 0; w < wpm; ++w) {
        for (int bit = 0; bit < 32; ++bit) {
            unsigned long long n = 0;
            for (int64_t i = 0; i < p; ++i) n += (words[i * wpm + w] >> bit) & 1u;
            c.pair_distance_sum += n * (static_cast<unsigned long long>(p) - n);
        }
        c.best_kept += static_cast<unsigned long long>(__builtin_popcount(words[c.best_member * wpm + w]));
    }
    return c;
}

}  // namespace sp::cpu
