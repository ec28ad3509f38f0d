// Binary differential evolution: the population's state and its generation steps, which run
// the evolution kernels of pruning/ops.h (CPU reference in pruning/cpu/evolution.cpp, CUDA in
// pruning/cuda/evolution.cpp) on the context's device.
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

#include "kernels/error.h"

namespace sp {

namespace {

constexpr uint64_t kStreamPick = 1, kStreamFlag = 2, kStreamCross = 3, kStreamInit = 4;

// Members' words packed on the host from (P, D) 0/1 floats (checkpoints).
std::vector<uint32_t> pack_host(const std::vector<float>& values, const PackedShape& shape) {
    const int64_t wpm = shape.words();
    std::vector<uint32_t> words(static_cast<size_t>(shape.total_words()), 0u);
    for (int64_t i = 0; i < shape.members; ++i)
        for (int64_t d = 0; d < shape.units; ++d)
            if (values[static_cast<size_t>(i * shape.units + d)] > 0.5f)
                words[static_cast<size_t>(i * wpm + d / 32)] |= 1u << (d % 32);
    return words;
}

}  // namespace

Evolution::Evolution(Device device, int64_t units, EvolutionOptions options, std::vector<UnitSegment> segments)
    : device_(device), shape_{options.members, units}, options_(options), segments_(std::move(segments)) {
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
    // Disjoint: the CUDA repair runs every segment at once and counts a segment's bits while
    // others set theirs (kernels/evolution.cu).
    std::vector<UnitSegment> by_offset = segments_;
    std::sort(by_offset.begin(), by_offset.end(), [](const UnitSegment& a, const UnitSegment& b) { return a.offset < b.offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        const UnitSegment &a = by_offset[i - 1], &b = by_offset[i];
        SP_REQUIRE(b.offset >= a.offset + a.size, "Evolution: segments [" << a.offset << ", " << a.offset + a.size
                                                                          << ") and [" << b.offset << ", "
                                                                          << b.offset + b.size << ") overlap");
    }
    const size_t bytes = static_cast<size_t>(shape_.total_words()) * sizeof(uint32_t);
    members_ = Buffer(device, bytes);
    trials_ = Buffer(device, bytes);
    accepted_ = Buffer(device, static_cast<size_t>(shape_.members) * sizeof(uint32_t));
    energies_ = Tensor(Shape{shape_.members}, device);
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
    evolution_repair(ctx, shape_, segment_table_, static_cast<int64_t>(segments_.size()), words);
}

void Evolution::initialise(Context& ctx, uint64_t key) {
    require_context(ctx, "initialise");
    evolution_initialise(ctx, shape_, random_stream_key(key, kStreamInit, 0), members_);
    repair(ctx, members_);
}

void Evolution::make_trials(Context& ctx, uint64_t key) {
    require_context(ctx, "make_trials");
    TrialDraws draws;
    draws.pick_key = random_stream_key(key, kStreamPick, 0);
    draws.flag_key = random_stream_key(key, kStreamFlag, 0);
    draws.cross_key = random_stream_key(key, kStreamCross, 0);
    draws.mutation_rate = static_cast<float>(options_.mutation_rate);
    draws.crossover = static_cast<float>(options_.crossover);
    draws.rule = options_.rule;
    evolution_make_trials(ctx, shape_, draws, members_, trials_);
    repair(ctx, trials_);
}

void Evolution::unpack_members(Context& ctx, Tensor& out) const {
    require_context(ctx, "unpack_members");
    evolution_unpack(ctx, shape_, members_, out);
}

void Evolution::unpack_trials(Context& ctx, Tensor& out) const {
    require_context(ctx, "unpack_trials");
    evolution_unpack(ctx, shape_, trials_, out);
}

void Evolution::set_energies(Context& ctx, const Tensor& energies) {
    require_context(ctx, "set_energies");
    SP_REQUIRE(energies.shape() == (Shape{shape_.members}) && energies.device() == device_,
               "Evolution::set_energies: expected (" << shape_.members << ") on " << device_name(device_) << ", got "
                                                     << energies.shape().str() << " on "
                                                     << device_name(energies.device()));
    energies_.copy_from(energies);
}

void Evolution::select(Context& ctx, const Tensor& trial_energies) {
    require_context(ctx, "select");
    evolution_select(ctx, shape_, trials_, trial_energies, members_, energies_, accepted_);
}

void Evolution::best_state(Context& ctx, Tensor& out) const {
    require_context(ctx, "best_state");
    evolution_best_member(ctx, shape_, members_, energies_, out);
}

EvolutionStats Evolution::stats(Context& ctx) const {
    require_context(ctx, "stats");
    const int64_t p = shape_.members;
    const EvolutionCounts counts = evolution_counts(ctx, shape_, members_, energies_);
    const std::vector<float> energies = energies_host();
    std::vector<uint32_t> accepted(static_cast<size_t>(p));
    copy_bytes(accepted.data(), Device::cpu, accepted_.data(), device_, accepted.size() * sizeof(uint32_t));

    EvolutionStats s;
    s.best_member = counts.best_member;
    s.best_energy = energies[static_cast<size_t>(counts.best_member)];
    double sum = 0.0;
    for (float e : energies) sum += e;
    s.mean_energy = static_cast<float>(sum / static_cast<double>(p));
    int64_t n_accepted = 0;
    for (uint32_t a : accepted) n_accepted += a != 0u;
    s.acceptance = static_cast<double>(n_accepted) / static_cast<double>(p);
    s.mean_hamming = static_cast<double>(counts.pair_distance_sum) /
                     (static_cast<double>(p) * static_cast<double>(p - 1) / 2.0);
    s.kept_fraction = static_cast<double>(counts.best_kept) / static_cast<double>(shape_.units);
    return s;
}

std::vector<float> Evolution::members_host() const {
    // The words to the host, unpacked there by the CPU kernel.
    Context host(Device::cpu);
    Buffer words(Device::cpu, members_.bytes());
    copy_bytes(words.data(), Device::cpu, members_.data(), device_, members_.bytes());
    Tensor out(Shape{shape_.members, shape_.units}, Device::cpu);
    evolution_unpack(host, shape_, words, out);
    return out.to_host();
}

std::vector<float> Evolution::energies_host() const { return energies_.to_host(); }

void Evolution::restore(Context& ctx, const std::vector<float>& members, const std::vector<float>& energies) {
    require_context(ctx, "restore");
    const int64_t p = shape_.members;
    SP_REQUIRE(static_cast<int64_t>(members.size()) == p * shape_.units,
               "Evolution::restore: " << members.size() << " member values, expected " << p << " × " << shape_.units);
    SP_REQUIRE(static_cast<int64_t>(energies.size()) == p,
               "Evolution::restore: " << energies.size() << " energies, expected " << p);
    for (float v : members)
        SP_REQUIRE(v == 0.0f || v == 1.0f, "Evolution::restore: member values must be 0 or 1, got " << v);
    ctx.synchronize();  // queued kernels may still use the buffers overwritten below
    const std::vector<uint32_t> words = pack_host(members, shape_);
    copy_bytes(members_.data(), device_, words.data(), Device::cpu, words.size() * sizeof(uint32_t));
    energies_.copy_from(Tensor::from_host(energies, Shape{p}, Device::cpu));
    const std::vector<uint32_t> none(static_cast<size_t>(p), 0u);
    copy_bytes(accepted_.data(), device_, none.data(), Device::cpu, none.size() * sizeof(uint32_t));
}

}  // namespace sp
