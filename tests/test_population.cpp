// Mask spaces and the population evaluator: batched == one-by-one for every granularity and
// energy, all-ones == unmasked, repair, residual groups, chunking, and CUDA batched vs CPU.
//
// Bounds. A batched pass and a single pass do the same operations on each image's row, but
// a GEMM may sum a dot product in another order when the batch size changes (OpenBLAS picks
// kernels by matrix size), so they are not bitwise equal in general. Each conv/linear output
// is within gamma(n)·Σ|terms| of the exact value in any order, BN/ReLU/pooling/additions add a
// few roundings each, and ReLU, max-pool and 0/1 gates do not amplify errors. Running the
// network with |weights|, |biases|, |BN scale| and -|running mean| on |images| (the magnitude
// network) bounds Σ|terms| at every layer propagated to the logits, so each logit of either
// pass is within gamma(L)·M of the exact one, L = Σ reduction lengths + 10 per layer, M the
// magnitude logit; two passes differ by at most twice that (δ). Energies: cross-entropy moves
// by at most 2δ per row, -10·margin by 20δ, and the error of a row can flip only when its
// |margin| <= 2δ; plus one float rounding of each mean.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "nn/models/model.h"
#include "pruning/mask_space.h"
#include "pruning/population.h"
#include "tests/harness.h"

using namespace sp;

namespace {

struct Net {
    std::unique_ptr<Model> model;
    Tensor images, labels;  // (B, C, H, W), (B)
};

Net make_net(const std::string& name, int64_t channels, int64_t size, Device device, int64_t batch,
             const ModelOptions& options = ModelOptions{}) {
    Net n;
    n.model = make_model(name, channels, size, size, 10, options);
    n.model->allocate(device, 7);
    // Non-trivial BN statistics, so eval-mode BN is not the identity.
    Tensor& st = n.model->parameters().states();
    if (st.numel() > 0) {
        std::vector<float> v = st.to_host();
        auto r = test::random_values(st.numel(), 99, 0.2f, 1.5f);
        for (const ParameterInfo& e : n.model->parameters().state_entries()) {
            const bool mean = e.name.find("running_mean") != std::string::npos;
            for (int64_t i = 0; i < e.shape.numel(); ++i)
                v[static_cast<size_t>(e.offset + i)] = mean ? r[static_cast<size_t>(e.offset + i)] - 0.85f
                                                            : r[static_cast<size_t>(e.offset + i)];
        }
        st.copy_from(Tensor::from_host(v, st.shape(), Device::cpu));
    }
    n.images = test::random_tensor(Shape{batch, channels, size, size}, device, 1234);
    std::vector<float> l(static_cast<size_t>(batch));
    for (int64_t i = 0; i < batch; ++i) l[static_cast<size_t>(i)] = static_cast<float>((i * 7 + 3) % 10);
    n.labels = Tensor::from_host(l, Shape{batch}, device);
    return n;
}

// P random repaired states (keep probability 0.6); member 0 keeps everything.
std::vector<float> random_population(const MaskSpace& space, int64_t p, uint64_t seed) {
    const int64_t d = space.size();
    auto u = test::random_values(p * d, seed, 0.0f, 1.0f);
    std::vector<float> pop(static_cast<size_t>(p * d));
    for (int64_t m = 0; m < p; ++m) {
        std::vector<float> s(static_cast<size_t>(d));
        for (int64_t i = 0; i < d; ++i) s[static_cast<size_t>(i)] = (m == 0 || u[static_cast<size_t>(m * d + i)] < 0.6f) ? 1.0f : 0.0f;
        space.repair(s);
        std::copy(s.begin(), s.end(), pop.begin() + m * d);
    }
    return pop;
}

std::vector<double> as_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// Per-member bound on |batched - one-by-one| (or CUDA - CPU) energies; see the file comment.
// `n` is a CPU net (a CUDA net's bound comes from its CPU twin: make_net with the same arguments).
std::vector<double> energy_bounds(Net& n, MaskSpace& space, const std::vector<float>& pop, int64_t members,
                                  EnergyKind kind) {
    Context ctx(Device::cpu);
    Model& m = *n.model;
    const bool was_training = m.training();
    m.set_training(false);
    int64_t length = 0;
    for (const LayerWiring& w : m.wiring())
        length += (w.conv ? w.conv->in_channels() / w.conv->groups() * w.conv->kernel() * w.conv->kernel()
                          : w.linear->in_features()) + 10;
    Tensor& values = m.parameters().values();
    Tensor& states = m.parameters().states();
    const auto v0 = values.to_host(), s0 = states.to_host();
    std::vector<float> va(v0.size()), sa = s0;
    for (size_t i = 0; i < v0.size(); ++i) va[i] = std::fabs(v0[i]);
    for (const ParameterInfo& e : m.parameters().state_entries())
        if (e.name.find("running_mean") != std::string::npos)
            for (int64_t i = 0; i < e.shape.numel(); ++i) sa[static_cast<size_t>(e.offset + i)] = -std::fabs(s0[static_cast<size_t>(e.offset + i)]);
    Tensor images = n.images.to(Device::cpu), labels = n.labels.to(Device::cpu);
    auto img = images.to_host();
    for (float& x : img) x = std::fabs(x);
    Tensor abs_images = Tensor::from_host(img, images.shape(), Device::cpu);
    const int64_t b = images.dim(0), d = space.size();
    const auto lab = labels.to_host();
    std::vector<double> bounds;
    for (int64_t p = 0; p < members; ++p) {
        Tensor state = Tensor::from_host(std::vector<float>(pop.begin() + p * d, pop.begin() + (p + 1) * d), Shape{d}, Device::cpu);
        space.attach(ctx, state);
        const auto logits = m.forward(ctx, images).to_host();
        Tensor energy(Shape{1}, Device::cpu);
        member_energies(ctx, m.forward(ctx, images), labels, kind, energy);
        values.copy_from(Tensor::from_host(va, values.shape(), Device::cpu));
        states.copy_from(Tensor::from_host(sa, states.shape(), Device::cpu));
        const auto mag = m.forward(ctx, abs_images).to_host();
        values.copy_from(Tensor::from_host(v0, values.shape(), Device::cpu));
        states.copy_from(Tensor::from_host(s0, states.shape(), Device::cpu));
        space.detach();
        const int64_t k = static_cast<int64_t>(logits.size()) / b;
        double total = 0.0;
        for (int64_t r = 0; r < b; ++r) {
            double mmax = 0.0, other = -HUGE_VAL;
            const int64_t y = static_cast<int64_t>(lab[static_cast<size_t>(r)]);
            for (int64_t j = 0; j < k; ++j) {
                mmax = std::max(mmax, static_cast<double>(mag[static_cast<size_t>(r * k + j)]));
                if (j != y) other = std::max(other, static_cast<double>(logits[static_cast<size_t>(r * k + j)]));
            }
            const double delta = 2.0 * test::gamma(length) * mmax;
            const double margin = logits[static_cast<size_t>(r * k + y)] - other;
            if (kind == EnergyKind::cross_entropy) total += 2.0 * delta;
            else if (kind == EnergyKind::margin) total += 20.0 * delta;
            else total += std::fabs(margin) <= 2.0 * delta ? 1.0 : 0.0;
        }
        bounds.push_back(total / static_cast<double>(b) + 2.0 * test::kUnitRoundoff * std::fabs(energy.to_host()[0]));
    }
    m.set_training(was_training);
    return bounds;
}

const EnergyKind kKinds[] = {EnergyKind::cross_entropy, EnergyKind::margin, EnergyKind::error};

}  // namespace

TEST_CASE("mask space: names, segments per granularity, repair, kept channels") {
    CHECK(granularity_from_name("kernel") == Granularity::kernel);
    CHECK(std::string(granularity_name(Granularity::filter)) == "filter");
    CHECK_THROWS_AS(granularity_from_name("row"), Error);
    CHECK(energy_from_name("cross-entropy") == EnergyKind::cross_entropy);
    CHECK_THROWS_AS(energy_from_name("loss"), Error);

    Net n = make_net("lenet", 1, 16, Device::cpu, 2);
    Model& m = *n.model;
    MaskSpace filter(m, MaskSpaceOptions{});
    int64_t expected = 0;
    for (const ChannelSet& s : m.channel_sets()) expected += s.prunable() ? s.size : 0;
    CHECK(filter.size() == expected);
    for (const MaskSegment& seg : filter.segments()) CHECK(seg.min_kept == 1);

    MaskSpaceOptions wo;
    wo.granularity = Granularity::weight;
    MaskSpace weight(m, wo);
    int64_t weights = 0;
    for (const LayerWiring& w : m.wiring()) {
        const bool classifier = m.channel_sets()[static_cast<size_t>(w.out_set)].kind == ChannelSet::Kind::logits;
        if (!classifier) weights += w.conv ? w.conv->weight().numel() : w.linear->weight().numel();
    }
    CHECK(weight.size() == weights);
    wo.include_classifier = true;
    CHECK(MaskSpace(m, wo).size() > weights);

    MaskSpaceOptions ko;
    ko.granularity = Granularity::kernel;
    MaskSpace kernel(m, ko);
    int64_t kernels = 0;
    for (const LayerWiring& w : m.wiring())
        if (w.conv) kernels += w.conv->out_channels() * w.conv->in_channels() / w.conv->groups();
    CHECK(kernel.size() == kernels);

    MaskSpaceOptions bad;
    bad.include = {"no-such-layer"};
    CHECK_THROWS_AS(MaskSpace(m, bad), Error);

    // A state that empties every segment is repaired: the best-scored unit, else the first.
    std::vector<float> s(static_cast<size_t>(filter.size()), 0.0f);
    std::vector<float> scores(s.size());
    for (size_t i = 0; i < s.size(); ++i) scores[i] = static_cast<float>((i * 37) % 11);
    std::vector<float> by_score = s;
    filter.repair(by_score, &scores);
    filter.repair(s);
    for (const MaskSegment& seg : filter.segments()) {
        double kept = 0, kept_scored = 0;
        int64_t best = 0;
        for (int64_t u = 0; u < seg.size; ++u) {
            kept += s[static_cast<size_t>(seg.offset + u)];
            kept_scored += by_score[static_cast<size_t>(seg.offset + u)];
            if (scores[static_cast<size_t>(seg.offset + u)] > scores[static_cast<size_t>(seg.offset + best)]) best = u;
        }
        CHECK(kept == 1);
        CHECK(s[static_cast<size_t>(seg.offset)] == 1.0f);
        CHECK(kept_scored == 1);
        CHECK(by_score[static_cast<size_t>(seg.offset + best)] == 1.0f);
    }
    auto kept = filter.kept_channels(s);
    CHECK(kept.size() == filter.segments().size());
    for (const MaskSegment& seg : filter.segments()) CHECK(kept.at(seg.set) == std::vector<int64_t>{0});
    // Weight segments may be emptied.
    std::vector<float> w0(static_cast<size_t>(weight.size()), 0.0f);
    weight.repair(w0);
    for (float v : w0) CHECK(v == 0.0f);
}

TEST_CASE("population: batched == one-by-one, every granularity and energy, lenet and resnet20") {
    const int64_t batch = 4, members = 5;
    for (const std::string name : {"lenet", "resnet20"}) {
        const int64_t channels = name == "lenet" ? 1 : 3;
        Net n = make_net(name, channels, 16, Device::cpu, batch);
        Context ctx(Device::cpu);
        n.model->set_training(true);
        for (Granularity g : {Granularity::filter, Granularity::weight, Granularity::kernel}) {
            for (bool after_bn : {true, false}) {
                if (g != Granularity::filter && !after_bn) continue;
                MaskSpaceOptions so;
                so.granularity = g;
                so.gate_after_bn = after_bn;
                MaskSpace space(*n.model, so);
                const auto pop_host = random_population(space, members, 55);
                Tensor pop = Tensor::from_host(pop_host, Shape{members, space.size()}, Device::cpu);
                for (EnergyKind kind : kKinds) {
                    const std::string what = name + " " + granularity_name(g) + (after_bn ? " after" : " before") +
                                             " BN, " + energy_name(kind);
                    CAPTURE(what);
                    PopulationOptions po;
                    po.energy = kind;
                    PopulationEvaluator ev(space, po);
                    Tensor batched(Shape{members}, Device::cpu), single(Shape{members}, Device::cpu);
                    ev.evaluate(ctx, pop, n.images, n.labels, batched);
                    ev.evaluate_one_by_one(ctx, pop, n.images, n.labels, single);
                    // Weight/kernel populations run as grouped convolutions: the same dot products per
                    // member, in GEMMs of other shapes — the same bound as the filter path.
                    test::check_within(batched.to_host(), as_double(single.to_host()),
                                       energy_bounds(n, space, pop_host, members, kind), "batched vs one-by-one");
                    // The model is left as it was: training mode, no masks.
                    CHECK(n.model->training());
                    CHECK(space.attached_members() == 0);
                    for (const LayerWiring& w : n.model->wiring()) {
                        CHECK((w.conv ? w.conv->output_mask() : w.linear->output_mask()) == nullptr);
                        CHECK((w.conv ? w.conv->weight_mask() : w.linear->weight_mask()) == nullptr);
                        if (w.bn) CHECK(w.bn->output_mask() == nullptr);
                    }
                    // Member 0 keeps every unit: the unmasked model's energy, from its logits.
                    n.model->set_training(false);
                    Tensor& logits = n.model->forward(ctx, n.images);
                    Tensor dense(Shape{1}, Device::cpu);
                    member_energies(ctx, logits, n.labels, kind, dense);
                    n.model->set_training(true);
                    CHECK(single.to_host()[0] == dense.to_host()[0]);  // the same forward, gates of exactly 1
                    if (kind == EnergyKind::cross_entropy) {  // and the loss op agrees to float rounding
                        const double ce = softmax_cross_entropy(ctx, logits, n.labels, 0.0f, nullptr);
                        CHECK(std::fabs(ce - dense.to_host()[0]) <= 4 * test::kUnitRoundoff * std::fabs(ce) + 1e-30);
                    }
                }
            }
        }
    }
}

TEST_CASE("population: compacted members == one-by-one, every energy, lenet and resnet20; filter masks after BN only") {
    const int64_t batch = 4, members = 5;
    for (const std::string name : {"lenet", "resnet20"}) {
        Net n = make_net(name, name == "lenet" ? 1 : 3, 16, Device::cpu, batch);
        Context ctx(Device::cpu);
        n.model->set_training(true);
        MaskSpace space(*n.model, MaskSpaceOptions{});
        const auto pop_host = random_population(space, members, 56);
        Tensor pop = Tensor::from_host(pop_host, Shape{members, space.size()}, Device::cpu);
        for (EnergyKind kind : kKinds) {
            CAPTURE(name);
            CAPTURE(energy_name(kind));
            PopulationOptions po;
            po.energy = kind;
            po.compact_members = true;
            Tensor compacted(Shape{members}, Device::cpu), single(Shape{members}, Device::cpu);
            PopulationEvaluator(space, po).evaluate(ctx, pop, n.images, n.labels, compacted);
            po.compact_members = false;
            PopulationEvaluator(space, po).evaluate_one_by_one(ctx, pop, n.images, n.labels, single);
            // A compacted layer sums the same nonzero terms the masked one does (its dropped inputs are
            // exact zeros), in GEMMs of other shapes: the bound of the batched path.
            test::check_within(compacted.to_host(), as_double(single.to_host()),
                               energy_bounds(n, space, pop_host, members, kind), "compacted vs one-by-one");
            CHECK(n.model->training());
            CHECK(space.attached_members() == 0);
        }
    }
    // Weight masks and gates before BN have no compacted equivalent: refused, naming the option.
    Net n = make_net("lenet", 1, 16, Device::cpu, batch);
    Context ctx(Device::cpu);
    PopulationOptions po;
    po.compact_members = true;
    for (bool weight_masks : {true, false}) {
        MaskSpaceOptions so;
        so.granularity = weight_masks ? Granularity::weight : Granularity::filter;
        so.gate_after_bn = weight_masks;
        MaskSpace space(*n.model, so);
        Tensor pop = Tensor::from_host(random_population(space, 2, 3), Shape{2, space.size()}, Device::cpu);
        Tensor e(Shape{2}, Device::cpu);
        const std::string error = test::error_of([&] { PopulationEvaluator(space, po).evaluate(ctx, pop, n.images, n.labels, e); });
        CHECK(error.find("compact_members needs filter masks that gate after BN") != std::string::npos);
    }
}

TEST_CASE("population: masking changes energies; gate before / after BN differ only through BN") {
    Net n = make_net("resnet20", 3, 16, Device::cpu, 4);
    Context ctx(Device::cpu);
    MaskSpaceOptions so;
    MaskSpace space(*n.model, so);
    const auto pop_host = random_population(space, 3, 5);
    Tensor pop = Tensor::from_host(pop_host, Shape{3, space.size()}, Device::cpu);
    PopulationOptions po;
    po.energy = EnergyKind::cross_entropy;
    PopulationEvaluator ev(space, po);
    Tensor e(Shape{3}, Device::cpu);
    ev.evaluate(ctx, pop, n.images, n.labels, e);
    auto v = e.to_host();
    CHECK(v[1] != v[0]);  // a pruned member is a different network
    CHECK(v[2] != v[1]);
}

namespace {

void check_chunking_and_member_statistics(Device device) {
    const int64_t batch = 4, members = 5;
    Net n = make_net("resnet20", 3, 16, device, batch);
    Context ctx(device, 0, /*deterministic=*/true);
    MaskSpace space(*n.model, MaskSpaceOptions{});
    Tensor pop = Tensor::from_host(random_population(space, members, 77), Shape{members, space.size()}, device);
    PopulationOptions po;
    PopulationEvaluator whole(space, po);
    Tensor all(Shape{members}, device);
    whole.evaluate(ctx, pop, n.images, n.labels, all);
    Net twin = make_net("resnet20", 3, 16, Device::cpu, batch);
    MaskSpace twin_space(*twin.model, MaskSpaceOptions{});
    const auto chunk_bounds = energy_bounds(twin, twin_space, pop.to_host(), members, po.energy);
    for (int64_t limit : {1, 8, 12, 100}) {  // 1 and 4 images: one member per pass; 8: 2, 12: 3 (+2), 100: all
        CAPTURE(limit);
        po.max_images_per_pass = limit;
        PopulationEvaluator chunked(space, po);
        Tensor e(Shape{members}, device);
        chunked.evaluate(ctx, pop, n.images, n.labels, e);
        CHECK(chunked.members_per_pass() == std::min<int64_t>(members, std::max<int64_t>(1, limit / batch)));
        test::check_within(e.to_host(), as_double(all.to_host()), chunk_bounds, "chunked vs whole");
    }
    // Train-mode BN per member: equals one-by-one, differs from eval mode, and leaves the
    // running statistics and the mode (eval here) as they were.
    n.model->set_training(false);
    const auto states = n.model->parameters().states().to_host();
    po = PopulationOptions{};
    po.member_batch_statistics = true;
    PopulationEvaluator stats(space, po);
    Tensor a(Shape{members}, device), b(Shape{members}, device);
    stats.evaluate(ctx, pop, n.images, n.labels, a);
    stats.evaluate_one_by_one(ctx, pop, n.images, n.labels, b);
    test::check_within(a.to_host(), as_double(b.to_host()), 0.0, "member statistics: batched vs one-by-one");
    CHECK(a.to_host()[0] != all.to_host()[0]);
    CHECK(n.model->parameters().states().to_host() == states);
    CHECK_FALSE(n.model->training());
}

// Restores "no memory limit" when a check fails mid-way.
struct MemoryLimit {
    Device device;
    MemoryLimit(Device d, size_t bytes) : device(d) { Buffer::set_memory_limit(d, bytes); }
    ~MemoryLimit() { Buffer::set_memory_limit(device, 0); }
};

// Bytes above the live count at its start that one evaluation of `members` members needs at its
// peak (fresh model and evaluator each time, so nothing of an earlier pass is still held).
size_t evaluation_peak(Device device, int64_t members, int64_t max_images_per_pass) {
    const int64_t batch = 4;
    Net n = make_net("resnet20", 3, 16, device, batch);
    Context ctx(device);
    MaskSpace space(*n.model, MaskSpaceOptions{});
    Tensor pop = Tensor::from_host(random_population(space, members, 77), Shape{members, space.size()}, device);
    Tensor e(Shape{members}, device);
    const size_t live = Buffer::live_bytes(device);
    Buffer::reset_peak(device);
    PopulationOptions po;
    po.max_images_per_pass = max_images_per_pass;
    PopulationEvaluator(space, po).evaluate(ctx, pop, n.images, n.labels, e);
    return Buffer::peak_bytes(device) - live;
}

// Out of memory while evaluating: the evaluator halves its members per pass until a pass fits
// (energies as without the limit), and fails with OutOfMemory when one member does not fit.
// Each evaluation runs on a fresh, identical model, which holds no activations of a former pass.
void check_out_of_memory_halving(Device device) {
    const int64_t batch = 4, members = 5;
    const size_t full = evaluation_peak(device, members, 0), one = evaluation_peak(device, members, batch);
    REQUIRE(one < full);
    auto evaluate = [&](size_t headroom, Tensor& energies, int64_t* members_per_pass) {
        Net n = make_net("resnet20", 3, 16, device, batch);
        Context ctx(device);
        MaskSpace space(*n.model, MaskSpaceOptions{});
        Tensor pop = Tensor::from_host(random_population(space, members, 77), Shape{members, space.size()}, device);
        PopulationEvaluator evaluator(space, PopulationOptions{});
        MemoryLimit limit(device, headroom ? Buffer::live_bytes(device) + headroom : 0);
        evaluator.evaluate(ctx, pop, n.images, n.labels, energies);
        if (members_per_pass) *members_per_pass = evaluator.members_per_pass();
    };
    Tensor unlimited(Shape{members}, device), limited(Shape{members}, device);
    int64_t per_pass = 0;
    evaluate(0, unlimited, &per_pass);
    CHECK(per_pass == members);
    evaluate((one + full) / 2, limited, &per_pass);
    CHECK(per_pass < members);
    CHECK(per_pass >= 1);
    Net n = make_net("resnet20", 3, 16, Device::cpu, batch);
    MaskSpace space(*n.model, MaskSpaceOptions{});
    const auto pop = random_population(space, members, 77);
    test::check_within(limited.to_host(), as_double(unlimited.to_host()),
                       energy_bounds(n, space, pop, members, EnergyKind::margin), "halved vs whole");
    CHECK_THROWS_AS(evaluate(one / 4, limited, nullptr), OutOfMemory);
}

}  // namespace

TEST_CASE("population: chunking (max_images_per_pass) and per-member batch statistics") {
    check_chunking_and_member_statistics(Device::cpu);
}

GPU_TEST_CASE("population (cuda): chunking (max_images_per_pass) and per-member batch statistics") {
    check_chunking_and_member_statistics(Device::cuda);
}

TEST_CASE("population: out of memory halves the members per pass; one member too many is an OutOfMemory") {
    check_out_of_memory_halving(Device::cpu);
}

GPU_TEST_CASE("population (cuda): out of memory halves the members per pass; one member too many is an OutOfMemory") {
    check_out_of_memory_halving(Device::cuda);
}

TEST_CASE("mask space: kept widths rounded up to a multiple, best-scoring pruned units first") {
    Net n = make_net("lenet", 1, 16, Device::cpu, 2);  // segments conv1 16, conv2 32, fc1 64
    MaskSpace space(*n.model, MaskSpaceOptions{});
    std::vector<float> state(static_cast<size_t>(space.size()), 0.0f), scores(state.size());
    for (size_t i = 0; i < scores.size(); ++i) scores[i] = static_cast<float>((i * 37) % 101);
    const std::vector<int64_t> kept_before = {3, 0, 57};  // rounds to 8, 8 (min_kept 1 first), 64
    for (size_t s = 0; s < 3; ++s) {
        const MaskSegment& seg = space.segments()[s];
        for (int64_t u = 0; u < kept_before[s]; ++u) state[static_cast<size_t>(seg.offset + seg.size - 1 - u)] = 1.0f;
    }
    const std::vector<float> before = state;
    space.round_kept_widths(state, 8, scores);
    const std::vector<int64_t> expected = {8, 8, 64};
    for (size_t s = 0; s < 3; ++s) {
        const MaskSegment& seg = space.segments()[s];
        int64_t kept = 0;
        float lowest_added = INFINITY, highest_left = -INFINITY;
        for (int64_t u = seg.offset; u < seg.offset + seg.size; ++u) {
            const auto i = static_cast<size_t>(u);
            kept += state[i] == 1.0f;
            if (before[i] == 1.0f) CHECK(state[i] == 1.0f);  // nothing kept is dropped
            if (before[i] == 0.0f && state[i] == 1.0f) lowest_added = std::min(lowest_added, scores[i]);
            if (state[i] == 0.0f) highest_left = std::max(highest_left, scores[i]);
        }
        CHECK(kept == expected[s]);
        CHECK(lowest_added >= highest_left);  // the added units are the best-scoring pruned ones
    }
    std::vector<float> again = state;
    space.round_kept_widths(again, 8, scores);
    CHECK(again == state);
    MaskSpaceOptions wo;
    wo.granularity = Granularity::weight;
    MaskSpace weights(*n.model, wo);
    std::vector<float> w(static_cast<size_t>(weights.size()), 1.0f);
    CHECK_THROWS_WITH_AS(weights.round_kept_widths(w, 8, w), doctest::Contains("filter granularity"), Error);
}

TEST_CASE("mask space: residual groups are pruned whole, only with option B, never with option A") {
    MaskSpaceOptions so;
    so.prune_residual_groups = true;
    {
        Net a = make_net("resnet20", 3, 16, Device::cpu, 2);  // option A (default)
        CHECK_THROWS_AS(MaskSpace(*a.model, so), Error);
    }
    ModelOptions mo;
    mo.shortcut = ShortcutOption::b;
    Net n = make_net("resnet20", 3, 16, Device::cpu, 4, mo);
    Context ctx(Device::cpu);
    MaskSpace space(*n.model, so);
    MaskSpace plain(*n.model, MaskSpaceOptions{});
    CHECK(space.size() > plain.size());
    const auto& sets = n.model->channel_sets();
    int groups = 0;
    for (const MaskSegment& seg : space.segments()) {
        if (sets[static_cast<size_t>(seg.set)].kind != ChannelSet::Kind::residual_group) continue;
        ++groups;
        // The group's mask reaches every writer (through its BN, the default gate) as one tensor.
        Tensor pop = Tensor::from_host(random_population(space, 3, 9), Shape{3, space.size()}, Device::cpu);
        space.attach(ctx, pop);
        const Tensor* mask = nullptr;
        int writers = 0;
        for (const LayerWiring& w : n.model->wiring()) {
            if (w.out_set != seg.set) continue;
            ++writers;
            REQUIRE(w.bn);
            if (!mask) mask = w.bn->output_mask();
            CHECK(w.bn->output_mask() == mask);
            CHECK(w.conv->output_mask() == nullptr);
        }
        CHECK(writers >= 2);
        REQUIRE(mask);
        CHECK(mask->shape() == Shape{3, seg.size});
        auto mv = mask->to_host();
        auto pv = pop.to_host();
        for (int64_t p = 0; p < 3; ++p)
            for (int64_t c = 0; c < seg.size; ++c)
                CHECK(mv[static_cast<size_t>(p * seg.size + c)] == pv[static_cast<size_t>(p * space.size() + seg.offset + c)]);
        space.detach();
    }
    CHECK(groups == 3);
    // Batched == one-by-one with groups in the space too.
    Tensor pop = Tensor::from_host(random_population(space, 4, 21), Shape{4, space.size()}, Device::cpu);
    PopulationEvaluator ev(space, PopulationOptions{});
    Tensor a(Shape{4}, Device::cpu), b(Shape{4}, Device::cpu);
    ev.evaluate(ctx, pop, n.images, n.labels, a);
    ev.evaluate_one_by_one(ctx, pop, n.images, n.labels, b);
    test::check_within(a.to_host(), as_double(b.to_host()), energy_bounds(n, space, pop.to_host(), 4, EnergyKind::margin),
                       "option B groups: batched vs one-by-one");
}

TEST_CASE("population: argument errors") {
    Net n = make_net("lenet", 1, 16, Device::cpu, 4);
    Context ctx(Device::cpu);
    MaskSpace space(*n.model, MaskSpaceOptions{});
    PopulationEvaluator ev(space, PopulationOptions{});
    Tensor pop(Shape{2, space.size() + 1}, Device::cpu), e(Shape{2}, Device::cpu);
    CHECK_THROWS_AS(ev.evaluate(ctx, pop, n.images, n.labels, e), Error);
    // Members that empty a layer or are not 0/1 are refused, as are non-finite energies.
    std::vector<float> ok(static_cast<size_t>(2 * space.size()), 1.0f), empty = ok, half = ok;
    const MaskSegment& first = space.segments()[0];
    std::fill_n(empty.begin() + space.size() + first.offset, first.size, 0.0f);
    half[3] = 0.5f;
    CHECK_THROWS_WITH_AS(ev.evaluate(ctx, Tensor::from_host(empty, Shape{2, space.size()}, Device::cpu), n.images,
                                     n.labels, e),
                         doctest::Contains("member 1 keeps 0"), Error);
    CHECK_THROWS_WITH_AS(ev.evaluate_one_by_one(ctx, Tensor::from_host(half, Shape{2, space.size()}, Device::cpu),
                                                n.images, n.labels, e),
                         doctest::Contains("0 or 1"), Error);
    Net broken = make_net("lenet", 1, 16, Device::cpu, 4);
    broken.model->parameters().values().fill(NAN);  // the classifier's NaN survives the ReLUs
    MaskSpace broken_space(*broken.model, MaskSpaceOptions{});
    PopulationEvaluator broken_ev(broken_space, PopulationOptions{});
    CHECK_THROWS_WITH_AS(broken_ev.evaluate(ctx, Tensor::from_host(ok, Shape{2, space.size()}, Device::cpu),
                                            broken.images, broken.labels, e),
                         doctest::Contains("non-finite energy"), Error);
    MaskSpaceOptions wo;
    wo.granularity = Granularity::weight;
    MaskSpace weights(*n.model, wo);
    Tensor two(Shape{2, weights.size()}, Device::cpu);
    two.fill(1.0f);
    weights.attach(ctx, two);  // a population of weight masks evaluates ...
    Tensor images(Shape{8, 1, 16, 16}, Device::cpu);
    Tensor& logits = n.model->forward(ctx, images);
    CHECK_THROWS_WITH_AS(n.model->backward(ctx, logits), doctest::Contains("evaluation only"), Error);  // ... never trains
    Tensor odd(Shape{3, 1, 16, 16}, Device::cpu);
    CHECK_THROWS_WITH_AS(n.model->forward(ctx, odd), doctest::Contains("P·B images"), Error);
    weights.detach();
}

GPU_TEST_CASE("population: batched (and compacted members) on CUDA == one-by-one on CPU within the derived bound") {
    const int64_t batch = 4, members = 5;
    for (const std::string name : {"lenet", "resnet20"}) {
        const int64_t channels = name == "lenet" ? 1 : 3;
        Net cpu = make_net(name, channels, 16, Device::cpu, batch);
        Net gpu = make_net(name, channels, 16, Device::cuda, batch);  // same seeds: same weights and data
        Context cctx(Device::cpu), gctx(Device::cuda);
        for (Granularity g : {Granularity::filter, Granularity::weight, Granularity::kernel})
        for (bool after_bn : {true, false}) {
            if (g != Granularity::filter && !after_bn) continue;
            MaskSpaceOptions so;
            so.granularity = g;
            so.gate_after_bn = after_bn;
            MaskSpace cspace(*cpu.model, so), gspace(*gpu.model, so);
            const auto pop_host = random_population(cspace, members, 31);
            Tensor cpop = Tensor::from_host(pop_host, Shape{members, cspace.size()}, Device::cpu);
            Tensor gpop = Tensor::from_host(pop_host, Shape{members, gspace.size()}, Device::cuda);
            for (EnergyKind kind : kKinds) {
                const std::string what = name + " " + granularity_name(g) + (after_bn ? " after BN, " : " before BN, ") +
                                         energy_name(kind);
                CAPTURE(what);
                PopulationOptions po;
                po.energy = kind;
                PopulationEvaluator cev(cspace, po), gev(gspace, po);
                Tensor ce(Shape{members}, Device::cpu), ge(Shape{members}, Device::cuda);
                cev.evaluate_one_by_one(cctx, cpop, cpu.images, cpu.labels, ce);
                gev.evaluate(gctx, gpop, gpu.images, gpu.labels, ge);
                const std::vector<double> bounds = energy_bounds(cpu, cspace, pop_host, members, kind);
                test::check_within(ge.to_host(), as_double(ce.to_host()), bounds, "CUDA batched vs CPU one-by-one");
                if (g == Granularity::filter && after_bn) {  // what compaction reproduces
                    po.compact_members = true;
                    PopulationEvaluator(gspace, po).evaluate(gctx, gpop, gpu.images, gpu.labels, ge);
                    test::check_within(ge.to_host(), as_double(ce.to_host()), bounds, "CUDA compacted vs CPU one-by-one");
                }
            }
        }
    }
}
