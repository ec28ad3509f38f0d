// Binary differential evolution: host side, the CPU reference of every operator, and the
// dispatch to the CUDA kernels (kernels/evolution.cu) on a CUDA context.
//
// Counter layout of the random draws of one call with stream `key` (u(s, c) is uniform c of
// stream s: sp::stream_uniform on the CPU, curand_init(s, c / 4, 0) + curand_uniform4 on the GPU;
// u lies in (0, 1]):
//   initialise:  unit d of member i is set when u(random_stream_key(key, 4, 0), i·D + d) <= 0.5
//   make_trials: partners of member i from u(random_stream_key(key, 1, 0), 4i + 0..2) (one Philox
//                block per member; see kernels::evolution_pick_partners, rejection-free);
//                flag F_d of member i: u(random_stream_key(key, 2, 0), i·D + d) <= mutation_rate;
//                crossover takes v_d when u(random_stream_key(key, 3, 0), i·D + d) <= crossover.
// The comparisons are `u <= p` on float(p) on both backends: with u in (0, 1], p = 0 never fires
// and p = 1 always does, so CR = 1 with mutation_rate = 0 makes every trial a copy of x_r1.
//
// Repair (after initialise and make_trials): a member whose segment has fewer than min_kept
// units set gets the lowest-index unset units of that segment set until it has min_kept (as
// MaskSpace::repair without scores). Padding bits past D in the last word stay 0.
#include "pruning/evolution.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/check.h"
#include "kernels/evolution.h"
#include "kernels/philox.h"

namespace sp {

namespace {

constexpr uint64_t kStreamPick = 1, kStreamFlag = 2, kStreamCross = 3, kStreamInit = 4;

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

// ---- CPU reference of the kernels

void cpu_initialise(uint32_t* words, int64_t members, int64_t units, int64_t wpm, uint64_t key) {
    for (int64_t i = 0; i < members; ++i) {
        UniformReader reader(key);
        for (int64_t w = 0; w < wpm; ++w) words[i * wpm + w] = draw_bits(reader, i, w, units, 0.5f);
    }
}

void cpu_make_trials(const uint32_t* members, uint32_t* trials, int64_t p, int64_t units, int64_t wpm,
                     uint64_t pick_key, uint64_t flag_key, uint64_t cross_key, float mutation_rate, float crossover,
                     int rule) {
    for (int64_t i = 0; i < p; ++i) {
        const PhiloxBlock pick = philox_block(pick_key, static_cast<uint64_t>(i));
        int64_t r[3];
        kernels::evolution_pick_partners(p, i, philox_uniform(pick.v[0]), philox_uniform(pick.v[1]),
                                         philox_uniform(pick.v[2]), r);
        UniformReader flags(flag_key), cross(cross_key);
        for (int64_t w = 0; w < wpm; ++w) {
            const uint32_t flag = draw_bits(flags, i, w, units, mutation_rate);
            const uint32_t take = draw_bits(cross, i, w, units, crossover);
            const uint32_t v = kernels::evolution_mutate_word(rule, members[r[0] * wpm + w], members[r[1] * wpm + w],
                                                              members[r[2] * wpm + w], flag);
            trials[i * wpm + w] = kernels::evolution_cross_word(v, members[i * wpm + w], take) &
                                  kernels::evolution_valid_bits(static_cast<size_t>(w), static_cast<size_t>(units));
        }
    }
}

void cpu_repair(uint32_t* words, int64_t members, int64_t wpm, const std::vector<UnitSegment>& segments) {
    for (int64_t i = 0; i < members; ++i) {
        uint32_t* row = words + i * wpm;
        for (const UnitSegment& s : segments) {
            if (s.size == 0) continue;
            const size_t offset = static_cast<size_t>(s.offset), size = static_cast<size_t>(s.size);
            const int64_t w0 = s.offset / 32, w1 = (s.offset + s.size + 31) / 32;
            int64_t kept = 0;
            for (int64_t w = w0; w < w1; ++w)
                kept += __builtin_popcount(row[w] & kernels::evolution_range_bits(static_cast<size_t>(w), offset, size));
            for (int64_t w = w0; w < w1 && kept < s.min_kept; ++w) {
                uint32_t free_bits = ~row[w] & kernels::evolution_range_bits(static_cast<size_t>(w), offset, size);
                while (free_bits != 0 && kept < s.min_kept) {
                    const uint32_t lowest = free_bits & (~free_bits + 1u);
                    row[w] |= lowest;
                    free_bits ^= lowest;
                    ++kept;
                }
            }
        }
    }
}

void cpu_unpack(const uint32_t* words, int64_t members, int64_t units, int64_t wpm, float* out) {
    for (int64_t i = 0; i < members; ++i)
        for (int64_t d = 0; d < units; ++d)
            out[i * units + d] = static_cast<float>((words[i * wpm + d / 32] >> (d % 32)) & 1u);
}

std::vector<uint32_t> pack_host(const std::vector<float>& values, int64_t members, int64_t units, int64_t wpm) {
    std::vector<uint32_t> words(static_cast<size_t>(members * wpm), 0u);
    for (int64_t i = 0; i < members; ++i)
        for (int64_t d = 0; d < units; ++d)
            if (values[static_cast<size_t>(i * units + d)] > 0.5f)
                words[static_cast<size_t>(i * wpm + d / 32)] |= 1u << (d % 32);
    return words;
}

}  // namespace

Evolution::Evolution(Device device, int64_t units, EvolutionOptions options, std::vector<UnitSegment> segments)
    : device_(device), units_(units), words_((units + 31) / 32), options_(options), segments_(std::move(segments)) {
    SP_REQUIRE(units >= 1, "Evolution: needs at least one unit, got " << units);
    SP_REQUIRE(options.members >= 4, "Evolution: needs at least 4 members (mutation takes three others), got "
                                         << options.members);
    SP_REQUIRE(options.mutation_rate >= 0.0 && options.mutation_rate <= 1.0,
               "Evolution: mutation_rate " << options.mutation_rate << " outside [0, 1]");
    SP_REQUIRE(options.crossover >= 0.0 && options.crossover <= 1.0,
               "Evolution: crossover " << options.crossover << " outside [0, 1]");
    SP_REQUIRE(device != Device::cuda || cuda_available(), "Evolution: CUDA device requested but no GPU is usable");
    std::vector<int64_t> table;
    for (const UnitSegment& s : segments_) {
        SP_REQUIRE(s.offset >= 0 && s.size >= 0 && s.offset + s.size <= units,
                   "Evolution: segment [" << s.offset << ", " << s.offset + s.size << ") outside [0, " << units << ")");
        SP_REQUIRE(s.min_kept >= 0 && s.min_kept <= s.size,
                   "Evolution: segment at " << s.offset << " asks min_kept " << s.min_kept << " of " << s.size << " units");
        table.insert(table.end(), {s.offset, s.size, s.min_kept});
    }
    const int64_t p = options.members;
    const size_t bytes = static_cast<size_t>(p * words_) * sizeof(uint32_t);
    members_ = Buffer(device, bytes);
    trials_ = Buffer(device, bytes);
    accepted_ = Buffer(device, static_cast<size_t>(p) * sizeof(uint32_t));
    energies_ = Tensor(Shape{p}, device);
    scratch_ = Buffer(device, sizeof(int64_t) + 2 * sizeof(unsigned long long));
    if (!table.empty()) {
        segment_table_ = Buffer(device, table.size() * sizeof(int64_t));
        copy_bytes(segment_table_.data(), device, table.data(), Device::cpu, table.size() * sizeof(int64_t));
    }
}

void Evolution::require_context(const Context& ctx, const char* what) const {
    SP_REQUIRE(ctx.device() == device_, "Evolution::" << what << ": context on " << device_name(ctx.device())
                                                      << ", population on " << device_name(device_));
}

void Evolution::repair(Context& ctx, Buffer& words) {
    if (segments_.empty()) return;
    if (device_ == Device::cuda)
        kernels::evolution_repair(words_of(words), static_cast<size_t>(options_.members), static_cast<size_t>(words_),
                                  static_cast<const int64_t*>(segment_table_.data()), segments_.size(), ctx.stream());
    else
        cpu_repair(words_of(words), options_.members, words_, segments_);
}

void Evolution::initialise(Context& ctx, uint64_t key) {
    require_context(ctx, "initialise");
    const uint64_t init_key = random_stream_key(key, kStreamInit, 0);
    if (device_ == Device::cuda)
        kernels::evolution_initialise(words_of(members_), static_cast<size_t>(options_.members),
                                      static_cast<size_t>(units_), static_cast<size_t>(words_), init_key, ctx.stream());
    else
        cpu_initialise(words_of(members_), options_.members, units_, words_, init_key);
    repair(ctx, members_);
}

void Evolution::make_trials(Context& ctx, uint64_t key) {
    require_context(ctx, "make_trials");
    const uint64_t pick = random_stream_key(key, kStreamPick, 0), flag = random_stream_key(key, kStreamFlag, 0),
                   cross = random_stream_key(key, kStreamCross, 0);
    const float rate = static_cast<float>(options_.mutation_rate), cr = static_cast<float>(options_.crossover);
    const int rule = options_.rule == MutationRule::reference ? 0 : 1;
    if (device_ == Device::cuda)
        kernels::evolution_make_trials(words_of(members_), words_of(trials_), static_cast<size_t>(options_.members),
                                       static_cast<size_t>(units_), static_cast<size_t>(words_), pick, flag, cross,
                                       rate, cr, rule, ctx.stream());
    else
        cpu_make_trials(words_of(members_), words_of(trials_), options_.members, units_, words_, pick, flag, cross,
                        rate, cr, rule);
    repair(ctx, trials_);
}

namespace {

void unpack_into(Context& ctx, Device device, const Buffer& words, int64_t members, int64_t units, int64_t wpm,
                 Tensor& out, const char* what) {
    SP_REQUIRE(out.shape() == (Shape{members, units}) && out.device() == device,
               "Evolution::" << what << ": expected a (" << members << ", " << units << ") tensor on "
                             << device_name(device) << ", got " << out.shape().str() << " on "
                             << device_name(out.device()));
    if (device == Device::cuda)
        kernels::evolution_unpack(words_of(words), static_cast<size_t>(members), static_cast<size_t>(units),
                                  static_cast<size_t>(wpm), out.data(), ctx.stream());
    else
        cpu_unpack(words_of(words), members, units, wpm, out.data());
}

}  // namespace

void Evolution::unpack_members(Context& ctx, Tensor& out) const {
    require_context(ctx, "unpack_members");
    unpack_into(ctx, device_, members_, options_.members, units_, words_, out, "unpack_members");
}

void Evolution::unpack_trials(Context& ctx, Tensor& out) const {
    require_context(ctx, "unpack_trials");
    unpack_into(ctx, device_, trials_, options_.members, units_, words_, out, "unpack_trials");
}

void Evolution::set_energies(Context& ctx, const Tensor& energies) {
    require_context(ctx, "set_energies");
    SP_REQUIRE(energies.shape() == (Shape{options_.members}) && energies.device() == device_,
               "Evolution::set_energies: expected (" << options_.members << ") on " << device_name(device_) << ", got "
                                                     << energies.shape().str() << " on "
                                                     << device_name(energies.device()));
    if (device_ == Device::cuda)
        SP_CHECK(cudaMemcpyAsync(energies_.data(), energies.data(), static_cast<size_t>(options_.members) * sizeof(float),
                                 cudaMemcpyDeviceToDevice, ctx.stream()));
    else
        std::memcpy(energies_.data(), energies.data(), static_cast<size_t>(options_.members) * sizeof(float));
}

void Evolution::select(Context& ctx, const Tensor& trial_energies) {
    require_context(ctx, "select");
    const int64_t p = options_.members;
    SP_REQUIRE(trial_energies.shape() == (Shape{p}) && trial_energies.device() == device_,
               "Evolution::select: expected trial energies (" << p << ") on " << device_name(device_) << ", got "
                                                               << trial_energies.shape().str() << " on "
                                                               << device_name(trial_energies.device()));
    uint32_t* accepted = static_cast<uint32_t*>(accepted_.data());
    if (device_ == Device::cuda) {
        kernels::evolution_select(words_of(members_), words_of(trials_), energies_.data(), trial_energies.data(),
                                  accepted, static_cast<size_t>(p), static_cast<size_t>(words_), ctx.stream());
        return;
    }
    uint32_t* members = words_of(members_);
    const uint32_t* trials = words_of(trials_);
    float* e = energies_.data();
    const float* te = trial_energies.data();
    for (int64_t i = 0; i < p; ++i) {
        const bool take = te[i] < e[i];  // strictly lower wins; NaN never does
        accepted[i] = take ? 1u : 0u;
        if (!take) continue;
        e[i] = te[i];
        std::copy(trials + i * words_, trials + (i + 1) * words_, members + i * words_);
    }
}

void Evolution::best_state(Context& ctx, Tensor& out) const {
    require_context(ctx, "best_state");
    SP_REQUIRE(out.shape() == (Shape{units_}) && out.device() == device_,
               "Evolution::best_state: expected (" << units_ << ") on " << device_name(device_) << ", got "
                                                   << out.shape().str() << " on " << device_name(out.device()));
    if (device_ == Device::cuda) {
        int64_t* best = static_cast<int64_t*>(scratch_.data());
        kernels::evolution_argmin(energies_.data(), static_cast<size_t>(options_.members), best, ctx.stream());
        kernels::evolution_unpack_member(words_of(members_), static_cast<size_t>(units_), static_cast<size_t>(words_),
                                         best, out.data(), ctx.stream());
        return;
    }
    const size_t best = kernels::evolution_argmin_index(energies_.data(), static_cast<size_t>(options_.members));
    cpu_unpack(words_of(members_) + best * static_cast<size_t>(words_), 1, units_, words_, out.data());
}

EvolutionStats Evolution::stats(Context& ctx) const {
    require_context(ctx, "stats");
    const int64_t p = options_.members;
    unsigned long long pair_sum = 0, best_kept = 0;
    if (device_ == Device::cuda) {
        char* scratch = static_cast<char*>(scratch_.data());
        int64_t* best = reinterpret_cast<int64_t*>(scratch);
        auto* counters = reinterpret_cast<unsigned long long*>(scratch + sizeof(int64_t));
        kernels::evolution_argmin(energies_.data(), static_cast<size_t>(p), best, ctx.stream());
        kernels::evolution_stats(words_of(members_), static_cast<size_t>(p), static_cast<size_t>(words_), best,
                                 counters, ctx.stream());
        unsigned long long host_counters[2];
        copy_bytes(host_counters, Device::cpu, counters, Device::cuda, sizeof(host_counters));  // synchronises
        pair_sum = host_counters[0];
        best_kept = host_counters[1];
    }
    const std::vector<float> energies = energies_host();
    std::vector<uint32_t> accepted(static_cast<size_t>(p));
    copy_bytes(accepted.data(), Device::cpu, accepted_.data(), device_, accepted.size() * sizeof(uint32_t));

    EvolutionStats s;
    const size_t best = kernels::evolution_argmin_index(energies.data(), static_cast<size_t>(p));
    s.best_member = static_cast<int64_t>(best);
    s.best_energy = energies[best];
    double sum = 0.0;
    for (float e : energies) sum += e;
    s.mean_energy = static_cast<float>(sum / static_cast<double>(p));
    int64_t n_accepted = 0;
    for (uint32_t a : accepted) n_accepted += a != 0u;
    s.acceptance = static_cast<double>(n_accepted) / static_cast<double>(p);
    if (device_ == Device::cpu) {
        // Σ over pairs of the Hamming distance = Σ over units of c (P - c), c = members with the unit set.
        const uint32_t* words = words_of(members_);
        for (int64_t w = 0; w < words_; ++w) {
            for (int bit = 0; bit < 32; ++bit) {
                unsigned long long c = 0;
                for (int64_t i = 0; i < p; ++i) c += (words[i * words_ + w] >> bit) & 1u;
                pair_sum += c * (static_cast<unsigned long long>(p) - c);
            }
            best_kept += static_cast<unsigned long long>(__builtin_popcount(words[static_cast<int64_t>(best) * words_ + w]));
        }
    }
    s.mean_hamming = static_cast<double>(pair_sum) / (static_cast<double>(p) * static_cast<double>(p - 1) / 2.0);
    s.kept_fraction = static_cast<double>(best_kept) / static_cast<double>(units_);
    return s;
}

std::vector<float> Evolution::members_host() const {
    std::vector<uint32_t> words(static_cast<size_t>(options_.members * words_));
    copy_bytes(words.data(), Device::cpu, members_.data(), device_, words.size() * sizeof(uint32_t));
    std::vector<float> out(static_cast<size_t>(options_.members * units_));
    cpu_unpack(words.data(), options_.members, units_, words_, out.data());
    return out;
}

std::vector<float> Evolution::energies_host() const { return energies_.to_host(); }

void Evolution::restore(Context& ctx, const std::vector<float>& members, const std::vector<float>& energies) {
    require_context(ctx, "restore");
    const int64_t p = options_.members;
    SP_REQUIRE(static_cast<int64_t>(members.size()) == p * units_,
               "Evolution::restore: " << members.size() << " member values, expected " << p << " × " << units_);
    SP_REQUIRE(static_cast<int64_t>(energies.size()) == p,
               "Evolution::restore: " << energies.size() << " energies, expected " << p);
    for (float v : members)
        SP_REQUIRE(v == 0.0f || v == 1.0f, "Evolution::restore: member values must be 0 or 1, got " << v);
    ctx.synchronize();  // queued kernels may still use the buffers overwritten below
    const std::vector<uint32_t> words = pack_host(members, p, units_, words_);
    copy_bytes(members_.data(), device_, words.data(), Device::cpu, words.size() * sizeof(uint32_t));
    energies_.copy_from(Tensor::from_host(energies, Shape{p}, Device::cpu));
    const std::vector<uint32_t> none(static_cast<size_t>(p), 0u);
    copy_bytes(accepted_.data(), device_, none.data(), Device::cpu, none.size() * sizeof(uint32_t));
}

}  // namespace sp
