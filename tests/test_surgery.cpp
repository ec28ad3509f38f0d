// Surgery tests: for every model family a compacted model gives the masked model's eval-mode
// logits (channels gated by hand, without the mask space: BN output masks, or conv/linear
// output masks without a BN; the same as zeroing BN gamma/beta or the filter); widths honoured
// and wrong names rejected; model_widths round trip; residual groups never split; parameter
// counts of a compacted model against a hand count.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/philox.h"
#include "nn/models/model.h"
#include "nn/optim.h"
#include "pruning/surgery.h"
#include "tests/harness.h"

namespace {

using namespace sp;
using KeptMap = std::map<int, std::vector<int64_t>>;

std::vector<float> host(const Tensor& t) { return t.to_host(); }


// A random kept subset (never empty) of every prunable set, and of the resizable residual
// groups when `groups`. Sets feeding AlexNet's cross-channel LRN keep a contiguous range
// (the only kind of subset for which masking and removal agree there).
KeptMap random_kept(const Model& m, uint64_t seed, bool groups) {
    KeptMap kept;
    uint64_t draw = 0;
    for (const ChannelSet& s : m.channel_sets()) {
        const bool group = s.kind == ChannelSet::Kind::residual_group && s.resizable;
        if (!s.prunable() && !(groups && group)) continue;
        std::vector<int64_t> k;
        if (s.cross_channel) {
            int64_t a = static_cast<int64_t>(stream_uniform(seed, draw++) * static_cast<float>(s.size));
            int64_t b = static_cast<int64_t>(stream_uniform(seed, draw++) * static_cast<float>(s.size));
            a = std::min(a, s.size - 1);
            b = std::min(std::max(b, a + 1), s.size);
            for (int64_t c = a; c < b; ++c) k.push_back(c);
        } else {
            for (int64_t c = 0; c < s.size; ++c)
                if (stream_uniform(seed, draw++) < 0.5f) k.push_back(c);
            if (k.empty()) k.push_back(static_cast<int64_t>(stream_uniform(seed, draw++) * static_cast<float>(s.size - 1)));
        }
        kept[s.id] = std::move(k);
    }
    return kept;
}

// 0/1 gates of the pruned channels of every layer writing a set of `kept`, one per wiring
// entry (an empty tensor where the layer writes no pruned set).
std::vector<Tensor> channel_gates(const Model& m, const KeptMap& kept) {
    std::vector<Tensor> gates;
    for (const LayerWiring& l : m.wiring()) {
        auto it = kept.find(l.out_set);
        if (it == kept.end()) {
            gates.emplace_back();
            continue;
        }
        const int64_t size = m.channel_sets()[static_cast<size_t>(l.out_set)].size;
        std::vector<float> g(static_cast<size_t>(size), 0.0f);
        for (int64_t c : it->second) g[static_cast<size_t>(c)] = 1.0f;
        gates.push_back(Tensor::from_host(g, Shape{size}, Device::cpu));
    }
    return gates;
}

// Gates every pruned channel with the layers' output masks: after its BN, or on the layer's
// output (bias included) without a BN. Every writer of a set is gated, so a residual group's
// pruned channel is zero in the sum. `gates` must outlive the masks (see unmask_model).
void mask_model(Model& m, const std::vector<Tensor>& gates) {
    for (size_t i = 0; i < gates.size(); ++i) {
        if (!gates[i].defined()) continue;
        const LayerWiring& l = m.wiring()[i];
        if (l.bn) l.bn->set_output_mask(&gates[i]);
        else if (l.conv) l.conv->set_output_mask(&gates[i]);
        else l.linear->set_output_mask(&gates[i]);
    }
}

void unmask_model(Model& m) {
    for (const LayerWiring& l : m.wiring()) {
        if (l.bn) l.bn->set_output_mask(nullptr);
        if (l.conv) l.conv->set_output_mask(nullptr);
        if (l.linear) l.linear->set_output_mask(nullptr);
    }
}

// The same removal by editing weights: zero gamma and beta of a pruned channel's BN, or the
// filter's weights and bias without a BN; in eval mode the channel then carries exactly zero.
void zero_pruned(Model& m, const std::vector<Tensor>& gates) {
    for (size_t i = 0; i < gates.size(); ++i) {
        if (!gates[i].defined()) continue;
        const LayerWiring& l = m.wiring()[i];
        const float* keep = gates[i].data();
        const int64_t size = gates[i].numel();
        if (l.bn) {
            Tensor g = l.bn->gamma(), b = l.bn->beta();
            for (int64_t c = 0; c < size; ++c)
                if (keep[c] == 0.0f) g.data()[c] = b.data()[c] = 0.0f;
            continue;
        }
        Tensor w = l.conv ? l.conv->weight() : l.linear->weight();  // (K, ...)
        const int64_t row = w.numel() / size;
        const bool has_bias = l.conv ? l.conv->has_bias() : l.linear->has_bias();
        for (int64_t c = 0; c < size; ++c) {
            if (keep[c] != 0.0f) continue;
            std::fill(w.data() + c * row, w.data() + (c + 1) * row, 0.0f);
            if (has_bias) (l.conv ? l.conv->bias() : l.linear->bias()).data()[c] = 0.0f;
        }
    }
}

// Roundings along the network, an upper bound on any path's: a conv/linear output is a sum of
// fan-in products plus the bias, an eval BN a few operations, a global average H·W + 1, an LRN
// a 5-term sum of squares, a scale, an add, a power and a divide; plus one per leaf layer for
// elementwise steps (residual adds).
int64_t rounding_chain(Model& m) {
    int64_t chain = 0;
    Shape previous(m.input_shape().dims());
    for (const LayerCost& c : m.layer_costs()) {
        chain += 1;
        if (c.kind == "conv" || c.kind == "linear") chain += c.macs / c.output.numel() + 1;
        if (c.kind == "batchnorm") chain += 4;
        if (c.kind == "global_avgpool") chain += previous[1] * previous[2] + 1;
        if (c.kind == "lrn") chain += 5 + 6;
        previous = Shape(c.output.dims());
    }
    return chain;
}

// Σ|terms| of every logit in the classifier (the last wired layer, a top-level module of every
// zoo model): |b_k| + Σ_f |w_kf · h_nf| for a linear; for SqueezeNet's 1x1 conv classifier,
// followed by ReLU (1-Lipschitz) and the global average, the average of that over positions.
std::vector<double> classifier_terms(Model& m, Context& ctx, const Tensor& x) {
    const LayerWiring& last = m.wiring().back();
    Sequential& net = m.network();
    const Tensor* h = &x;
    size_t i = 0;
    for (; i < net.size() && &net[i] != last.module; ++i) h = &net[i].forward(ctx, *h);
    REQUIRE(i < net.size());
    const auto f = h->to_host();
    const int64_t N = h->dim(0), K = m.num_classes();
    const auto w = (last.conv ? last.conv->weight() : last.linear->weight()).to_host();  // (K, F) or (K, C, 1, 1)
    const auto b = (last.conv ? last.conv->bias() : last.linear->bias()).to_host();
    const int64_t F = h->dim(1);
    const int64_t HW = last.conv ? h->dim(2) * h->dim(3) : 1;
    if (last.conv) REQUIRE((last.conv->kernel() == 1 && last.conv->stride() == 1 && last.conv->padding() == 0));
    std::vector<double> terms(static_cast<size_t>(N * K), 0.0);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) {
            double t = 0.0;
            for (int64_t p = 0; p < HW; ++p) {
                t += std::fabs(b[static_cast<size_t>(k)]);
                for (int64_t c = 0; c < F; ++c)
                    t += std::fabs(static_cast<double>(w[static_cast<size_t>(k * F + c)]) *
                                   f[static_cast<size_t>((n * F + c) * HW + p)]);
            }
            terms[static_cast<size_t>(n * K + k)] = t / static_cast<double>(HW);
        }
    return terms;
}

struct Family {
    const char* name;
    int64_t c, side;
    ShortcutOption shortcut;
    bool groups;  // also prune the residual groups (projections only)
};

// Masked vs compacted eval logits for one family.
void check_compaction(const Family& f, uint64_t seed) {
    const std::string family = f.name;
    CAPTURE(family);
    CAPTURE(f.groups);
    ModelOptions options;
    options.shortcut = f.shortcut;
    auto model = make_model(f.name, f.c, f.side, f.side, 10, options);
    model->allocate(Device::cpu, seed);
    test::randomise_bn(*model, seed + 1000);
    model->set_training(false);
    Context ctx(Device::cpu, seed);
    const int64_t N = 2;
    Tensor x = test::random_tensor(Shape{N, f.c, f.side, f.side}, Device::cpu, seed + 7);
    const auto dense = host(model->forward(ctx, x));

    const KeptMap kept = random_kept(*model, seed + 3, f.groups);
    REQUIRE(!kept.empty());
    auto compact = compact_model(*model, kept);  // from the unmasked weights: pruned slices are dropped
    const std::vector<Tensor> gates = channel_gates(*model, kept);
    mask_model(*model, gates);
    const auto masked = host(model->forward(ctx, x));
    const auto compacted = host(compact->forward(ctx, x));
    REQUIRE(compacted.size() == masked.size());

    // Both forwards sum the same nonzero terms (the compacted one drops exact zeros), in an
    // order that may differ (GEMM blocking follows the reduction length). As in the CPU-vs-CUDA
    // test of test_models.cpp, each forward's classifier features carry relative error at most
    // gamma(chain), so each logit errs by at most gamma(chain) Σ|terms|, and the two by twice
    // that. (A worst-case bound that propagates errors through |W| grows exponentially with
    // depth and says nothing here.)
    const double g = test::gamma(rounding_chain(*model));
    const auto terms = classifier_terms(*model, ctx, x);
    std::vector<double> expected(masked.begin(), masked.end()), bound(masked.size());
    double largest_bound = 0.0, pruning_effect = 0.0;
    for (size_t i = 0; i < bound.size(); ++i) {
        bound[i] = 2.0 * g * terms[i];
        largest_bound = std::max(largest_bound, bound[i]);
        pruning_effect = std::max(pruning_effect, std::fabs(static_cast<double>(dense[i]) - masked[i]));
    }
    test::check_within(compacted, expected, bound, family + " compacted vs masked logits");
    // The test must be able to fail: pruning moved the logits far beyond the tolerance.
    CHECK(pruning_effect > 10.0 * largest_bound);

    // Gating by masks and zeroing the pruned parameters are the same exact removal: both put
    // exact zeros in the same places, so the logits agree bit for bit.
    unmask_model(*model);
    zero_pruned(*model, gates);
    CHECK(host(model->forward(ctx, x)) == masked);

    // The compacted widths are the kept sizes.
    for (const auto& [id, k] : kept)
        CHECK(compact->channel_sets()[static_cast<size_t>(id)].size == static_cast<int64_t>(k.size()));
    CHECK(compact->parameter_count() < model->parameter_count());
}

const std::vector<Family> kFamilies = {
    {"lenet", 1, 16, ShortcutOption::a, false},   {"resnet20", 3, 16, ShortcutOption::a, false},
    {"resnet20", 3, 16, ShortcutOption::b, true}, {"resnet18", 3, 16, ShortcutOption::b, true},
    {"vgg16", 3, 16, ShortcutOption::a, false},   {"alexnet", 3, 16, ShortcutOption::a, false},
    {"squeezenet", 3, 16, ShortcutOption::a, false},
};

const ChannelSet& named(const Model& m, const std::string& name) {
    const int id = m.find_set(name);
    REQUIRE(id >= 0);
    return m.channel_sets()[static_cast<size_t>(id)];
}

const LayerWiring& layer(const Model& m, const std::string& name) {
    for (const LayerWiring& l : m.wiring())
        if (l.name == name) return l;
    FAIL("no layer " << name);
    return m.wiring().front();
}

}  // namespace

TEST_CASE("surgery: compacted eval logits equal the masked model's for every family") {
    uint64_t seed = 100;
    for (const Family& f : kFamilies) check_compaction(f, seed += 10);
}

TEST_CASE("surgery: builders honour widths and reject wrong names and widths") {
    SUBCASE("lenet, vgg16, alexnet: filters and neurons") {
        ModelOptions o;
        o.widths = {{"conv1", 5}, {"fc1", 9}};
        auto lenet = make_model("lenet", 1, 16, 16, 10, o);
        CHECK(layer(*lenet, "conv1").conv->out_channels() == 5);
        CHECK(layer(*lenet, "conv2").conv->in_channels() == 5);
        CHECK(layer(*lenet, "conv1").bn->channels() == 5);
        CHECK(layer(*lenet, "fc1").linear->out_features() == 9);
        CHECK(layer(*lenet, "fc2").linear->in_features() == 9);
        o.widths = {{"classifier.0", 100}, {"features.40", 20}};
        auto vgg = make_model("vgg16", 3, 32, 32, 10, o);
        CHECK(layer(*vgg, "classifier.0").linear->in_features() == 20);
        CHECK(layer(*vgg, "classifier.0").bn->channels() == 100);
        CHECK(layer(*vgg, "classifier.3").linear->in_features() == 100);
        o.widths = {{"conv2", 10}, {"fc2", 7}};
        auto alex = make_model("alexnet", 3, 16, 16, 10, o);
        CHECK(layer(*alex, "fc1").linear->in_features() == 10 * 3 * 3);
        CHECK(layer(*alex, "fc3").linear->in_features() == 7);
    }
    SUBCASE("squeezenet: squeeze and expand widths, concatenations follow") {
        ModelOptions o;
        o.widths = {{"features.3.squeeze", 3}, {"features.3.expand1x1", 5}, {"features.3.expand3x3", 6}};
        auto sq = make_model("squeezenet", 3, 16, 16, 10, o);
        CHECK(layer(*sq, "features.3.expand3x3").conv->in_channels() == 3);
        CHECK(named(*sq, "features.3.cat").size == 11);
        CHECK(layer(*sq, "features.4.squeeze").conv->in_channels() == 11);
    }
    SUBCASE("resnets: block-internal widths; residual groups with projections only") {
        ModelOptions o;
        o.widths = {{"layer2.1.conv1", 3}};
        auto r20 = make_model("resnet20", 3, 16, 16, 10, o);
        CHECK(layer(*r20, "layer2.1.conv1").conv->out_channels() == 3);
        CHECK(layer(*r20, "layer2.1.conv2").conv->in_channels() == 3);
        CHECK(layer(*r20, "layer2.1.conv2").conv->out_channels() == 32);
        o.widths = {{"layer2", 16}};  // option a: zero padding fixes the group widths
        CHECK_THROWS_AS(make_model("resnet20", 3, 16, 16, 10, o), sp::Error);
        o.shortcut = ShortcutOption::b;
        o.widths = {{"layer1", 8}, {"layer2", 12}};
        auto rb = make_model("resnet20", 3, 16, 16, 10, o);
        CHECK(layer(*rb, "conv1").conv->out_channels() == 8);
        CHECK(layer(*rb, "layer1.2.conv2").conv->out_channels() == 8);
        CHECK(layer(*rb, "layer2.0.conv1").conv->in_channels() == 8);
        CHECK(layer(*rb, "layer2.0.shortcut.0").conv->in_channels() == 8);
        CHECK(layer(*rb, "layer2.0.shortcut.0").conv->out_channels() == 12);
        CHECK(layer(*rb, "layer2.0.conv1").conv->out_channels() == 32);  // internal default
        CHECK(layer(*rb, "layer3.0.conv1").conv->in_channels() == 12);
        o.widths = {{"layer4", 100}};
        auto r18 = make_model("resnet18", 3, 16, 16, 10, o);
        CHECK(layer(*r18, "fc").linear->in_features() == 100);
        CHECK(layer(*r18, "layer4.1.conv2").conv->out_channels() == 100);
    }
    SUBCASE("rejected: zero or negative widths, unknown names, fixed sets") {
        const struct { const char* model; const char* set; int64_t width; } bad[] = {
            {"lenet", "conv1", 0},          {"lenet", "conv1", -3},       {"lenet", "conv3", 4},
            {"lenet", "fc2", 10},           {"lenet", "input", 1},        {"resnet20", "layer1.0.conv3", 4},
            {"squeezenet", "features.3.cat", 16}, {"squeezenet", "classifier.1", 10}, {"vgg16", "features.1", 8},
        };
        for (const auto& b : bad) {
            const std::string model_name = b.model, set_name = b.set;
            CAPTURE(model_name);
            CAPTURE(set_name);
            ModelOptions o;
            o.widths[b.set] = b.width;
            CHECK_THROWS_AS(make_model(b.model, 3, 16, 16, 10, o), sp::Error);
        }
    }
}

TEST_CASE("surgery: model_widths round trip and identity compaction") {
    for (const std::string name : {"lenet", "squeezenet", "resnet20"}) {
        CAPTURE(name);
        ModelOptions o;
        o.shortcut = ShortcutOption::b;
        auto model = make_model(name, 3, 16, 16, 10, o);
        model->allocate(Device::cpu, 5);
        // Defaults: every resizable set at its architecture width.
        const auto defaults = model_widths(*model);
        for (const ChannelSet& s : model->channel_sets()) {
            CHECK(defaults.count(s.name) == (s.resizable ? 1u : 0u));
            if (s.resizable) CHECK(defaults.at(s.name) == s.size);
        }
        // Compact, then rebuild from the widths alone: the same architecture.
        auto compact = compact_model(*model, random_kept(*model, 9, true));
        const auto widths = model_widths(*compact);
        ModelOptions again = o;
        again.widths = widths;
        auto rebuilt = make_model(name, 3, 16, 16, 10, again);
        CHECK(rebuilt->parameter_count() == compact->parameter_count());
        REQUIRE(rebuilt->channel_sets().size() == compact->channel_sets().size());
        for (size_t i = 0; i < rebuilt->channel_sets().size(); ++i)
            CHECK(rebuilt->channel_sets()[i].size == compact->channel_sets()[i].size);
        CHECK(compact->options().widths == widths);
        // Keeping everything copies the model exactly.
        auto same = compact_model(*model, {});
        CHECK(same->parameters().values().to_host() == model->parameters().values().to_host());
        CHECK(same->parameters().states().to_host() == model->parameters().states().to_host());
    }
}

TEST_CASE("surgery: a residual group's kept set applies to every writer and reader") {
    ModelOptions o;
    o.shortcut = ShortcutOption::b;
    auto model = make_model("resnet20", 3, 16, 16, 10, o);
    model->allocate(Device::cpu, 8);
    const int g2 = model->find_set("layer2");
    const std::vector<int64_t> k = {1, 4, 5, 17, 30};
    auto compact = compact_model(*model, {{g2, k}});
    const int64_t n = static_cast<int64_t>(k.size());
    int writers = 0, readers = 0;
    for (const LayerWiring& l : compact->wiring()) {
        const LayerWiring& src = layer(*model, l.name);
        if (l.out_set == g2) {  // conv2 of every layer2 block and the projection: kept rows
            ++writers;
            CHECK(l.conv->out_channels() == n);
            CHECK(l.bn->channels() == n);
            const auto w = host(l.conv->weight()), ws = host(src.conv->weight());
            const int64_t row = w.size() / n;
            for (int64_t o2 = 0; o2 < n; ++o2)
                CHECK(std::equal(w.begin() + o2 * row, w.begin() + (o2 + 1) * row,
                                 ws.begin() + k[static_cast<size_t>(o2)] * row));
            const auto mean = host(l.bn->running_mean()), means = host(src.bn->running_mean());
            for (int64_t o2 = 0; o2 < n; ++o2) CHECK(mean[o2] == means[k[static_cast<size_t>(o2)]]);
        }
        if (l.in_set == g2) {  // layer2 blocks' conv1, layer3.0's conv1 and projection: kept columns
            ++readers;
            CHECK(l.conv->in_channels() == n);
            const auto w = host(l.conv->weight()), ws = host(src.conv->weight());
            const int64_t K = l.conv->out_channels(), C = src.conv->in_channels(), rs = l.conv->kernel() * l.conv->kernel();
            for (int64_t o2 = 0; o2 < K; ++o2)
                for (int64_t i = 0; i < n; ++i)
                    CHECK(std::equal(w.begin() + (o2 * n + i) * rs, w.begin() + (o2 * n + i + 1) * rs,
                                     ws.begin() + (o2 * C + k[static_cast<size_t>(i)]) * rs));
        }
    }
    CHECK(writers == 3 + 1);
    CHECK(readers == 2 + 2);

    // Groups fixed by option-A padding, concatenations that disagree with their parts, empty,
    // unordered or out-of-range kept sets are rejected.
    auto a = make_model("resnet20", 3, 16, 16, 10);
    a->allocate(Device::cpu, 8);
    CHECK_THROWS_AS(compact_model(*a, {{a->find_set("layer2"), {0, 1}}}), sp::Error);
    CHECK_THROWS_AS(compact_model(*a, {{a->find_set("layer2.0.conv1"), {}}}), sp::Error);
    CHECK_THROWS_AS(compact_model(*a, {{a->find_set("layer2.0.conv1"), {3, 2}}}), sp::Error);
    CHECK_THROWS_AS(compact_model(*a, {{a->find_set("layer2.0.conv1"), {32}}}), sp::Error);
    CHECK_THROWS_AS(compact_model(*a, {{99, {0}}}), sp::Error);
    CHECK_THROWS_AS(compact_model(*a, {{0, {0, 1}}}), sp::Error);  // the input
    auto sq = make_model("squeezenet", 3, 16, 16, 10);
    sq->allocate(Device::cpu, 8);
    const int e1 = sq->find_set("features.3.expand1x1"), cat = sq->find_set("features.3.cat");
    CHECK_THROWS_AS(compact_model(*sq, {{e1, {0, 2}}, {cat, {0, 1}}}), sp::Error);
    std::vector<int64_t> cat_kept = {0, 2};
    for (int64_t c = 64; c < 128; ++c) cat_kept.push_back(c);
    CHECK(compact_model(*sq, {{e1, {0, 2}}, {cat, cat_kept}})->channel_sets()[static_cast<size_t>(cat)].size == 66);
}

TEST_CASE("surgery: parameter count of a compacted LeNet equals the hand count") {
    auto model = make_model("lenet", 1, 16, 16, 10);
    model->allocate(Device::cpu, 4);
    const KeptMap kept = {{model->find_set("conv1"), {0, 3, 7, 8, 15}},
                          {model->find_set("conv2"), {1, 2, 3, 5, 8, 13, 31}},
                          {model->find_set("fc1"), {0, 1, 2, 3, 4, 5, 6, 7, 63}}};
    auto compact = compact_model(*model, kept);
    // conv1 5x1x3x3 + BN 2·5; conv2 7x5x3x3 + BN 2·7; fc1 9x(7·4·4) + 9; fc2 10x9 + 10.
    const int64_t hand = (5 * 9 + 10) + (7 * 5 * 9 + 14) + (9 * 7 * 16 + 9) + (10 * 9 + 10);
    CHECK(compact->parameter_count() == hand);
    // fc1's columns: each kept conv2 channel's 4x4 block, in order.
    const auto w = host(layer(*compact, "fc1").linear->weight());   // (9, 112)
    const auto ws = host(layer(*model, "fc1").linear->weight());    // (64, 512)
    const std::vector<int64_t>& rows = kept.at(model->find_set("fc1"));
    const std::vector<int64_t>& chans = kept.at(model->find_set("conv2"));
    for (size_t r = 0; r < rows.size(); ++r)
        for (size_t c = 0; c < chans.size(); ++c)
            for (int64_t hw = 0; hw < 16; ++hw)
                CHECK(w[r * 112 + c * 16 + static_cast<size_t>(hw)] ==
                      ws[static_cast<size_t>(rows[r] * 512 + chans[c] * 16 + hw)]);
}

GPU_TEST_CASE("surgery: compacting a CUDA model copies the same slices as on the CPU") {
    ModelOptions o;
    o.shortcut = ShortcutOption::b;
    auto cpu_model = make_model("resnet20", 3, 16, 16, 10, o);
    auto gpu_model = make_model("resnet20", 3, 16, 16, 10, o);
    cpu_model->allocate(Device::cpu, 12);  // host-side initialisation: the same weights
    gpu_model->allocate(Device::cuda, 12);
    const KeptMap kept = random_kept(*cpu_model, 13, true);
    auto cpu_compact = compact_model(*cpu_model, kept);
    auto gpu_compact = compact_model(*gpu_model, kept);
    CHECK(gpu_compact->parameters().device() == Device::cuda);
    CHECK(gpu_compact->parameters().values().to_host() == cpu_compact->parameters().values().to_host());
    CHECK(gpu_compact->parameters().states().to_host() == cpu_compact->parameters().states().to_host());
}

namespace sp::test {
namespace {

// Kept channels with an odd count in every set (at least one), so the compacted entries have
// sizes that would put unaligned entries after them without the store's alignment.
KeptMap odd_kept(const Model& m, uint64_t seed) {
    KeptMap kept = random_kept(m, seed, true);
    for (auto& [id, k] : kept)
        if (k.size() % 2 == 0) k.pop_back();
    return kept;
}

// Every parameter, gradient and state entry of `store` starts on a 256-byte boundary of its
// buffer (and of memory itself where the buffer's base is, as cudaMalloc's is, so aligned).
void check_entries_aligned(const ParameterStore& store) {
    const int64_t align = ParameterStore::kEntryAlignFloats;
    for (size_t i = 0; i < store.parameters().size(); ++i) {
        CAPTURE(store.parameters()[i].name);
        CHECK(store.parameters()[i].offset % align == 0);
        if (store.device() == Device::cuda) {
            CHECK(reinterpret_cast<uintptr_t>(store.value(static_cast<int>(i)).data()) % 256 == 0);
            CHECK(reinterpret_cast<uintptr_t>(store.grad(static_cast<int>(i)).data()) % 256 == 0);
        }
    }
    for (const ParameterInfo& s : store.state_entries()) CHECK(s.offset % align == 0);
}

}  // namespace

TEST_CASE("surgery: a compacted model with odd widths keeps every entry aligned, padding zero") {
    ModelOptions o;
    o.shortcut = ShortcutOption::b;
    auto model = make_model("resnet20", 3, 16, 16, 10, o);
    model->allocate(Device::cpu, 21);
    auto compact = compact_model(*model, odd_kept(*model, 22));
    const ParameterStore& store = compact->parameters();
    check_entries_aligned(store);
    // The padding exists (odd sizes) and is zero, so it changes no optimizer step or norm.
    CHECK(store.parameter_floats() > store.parameter_count());
    const std::vector<float> values = compact->parameters().values().to_host();
    std::vector<bool> inside(values.size(), false);
    for (const ParameterInfo& p : store.parameters())
        std::fill_n(inside.begin() + p.offset, p.shape.numel(), true);
    for (size_t i = 0; i < values.size(); ++i)
        if (!inside[i]) REQUIRE(values[i] == 0.0f);
    // Packing drops exactly the padding, and unpacking restores the flat layout.
    Tensor packed = store.packed(compact->parameters().values());
    CHECK(packed.numel() == store.parameter_count());
    Tensor flat(Shape{store.parameter_floats()}, Device::cpu);
    store.unpack(packed, flat);
    CHECK(flat.to_host() == values);
}

GPU_TEST_CASE("surgery (cuda): a compacted model with odd widths agrees with the CPU and trains") {
    ModelOptions o;
    o.shortcut = ShortcutOption::b;
    auto dense = make_model("resnet20", 3, 16, 16, 10, o);
    dense->allocate(Device::cpu, 31);
    test::randomise_bn(*dense, 32);
    const KeptMap kept = odd_kept(*dense, 33);
    auto cpu_model = compact_model(*dense, kept);
    auto gpu_model = make_model("resnet20", 3, 16, 16, 10, o);
    gpu_model->allocate(Device::cuda, 31);
    gpu_model = compact_model(*gpu_model, kept);
    gpu_model->parameters().values().copy_from(cpu_model->parameters().values());
    gpu_model->parameters().states().copy_from(cpu_model->parameters().states());
    check_entries_aligned(gpu_model->parameters());

    // Eval-mode forward: within the bound the CPU-vs-CUDA model test derives.
    cpu_model->set_training(false);
    gpu_model->set_training(false);
    Context cpu(Device::cpu, 31), gpu(Device::cuda, 31);
    const int64_t N = 8;
    Tensor x = random_tensor(Shape{N, 3, 16, 16}, Device::cpu, 34);
    const auto expected_f = host(cpu_model->forward(cpu, x));
    const auto actual = host(gpu_model->forward(gpu, x.to(Device::cuda)));
    const double g = gamma(rounding_chain(*cpu_model));
    const auto terms = classifier_terms(*cpu_model, cpu, x);
    std::vector<double> expected(expected_f.begin(), expected_f.end()), bound(terms.size());
    for (size_t i = 0; i < bound.size(); ++i) bound[i] = 2.0 * g * terms[i];
    check_within(actual, expected, bound, "compacted odd-width resnet20 logits, CUDA vs CPU");

    // Training steps on CUDA (cuDNN backward data and filter, and cuBLAS on the odd-sized entries):
    // the loss on a fixed batch falls and every value stays finite.
    gpu_model->set_training(true);
    std::vector<float> label_values(N);
    for (int64_t i = 0; i < N; ++i) label_values[static_cast<size_t>(i)] = static_cast<float>(i % 10);
    Tensor xg = x.to(Device::cuda), labels = Tensor::from_host(label_values, Shape{N}, Device::cuda);
    SoftmaxCrossEntropy loss;
    SgdHyper hyper;
    hyper.momentum = 0.9f;
    Sgd sgd(hyper);
    float first = 0.0f, last = 0.0f;
    for (int step = 0; step < 8; ++step) {
        gpu.set_step(static_cast<uint64_t>(step));
        last = loss.forward(gpu, gpu_model->forward(gpu, xg), labels);
        if (step == 0) first = last;
        gpu_model->backward(gpu, loss.backward(gpu));
        sgd.step(gpu, gpu_model->parameters(), 0.05f);
    }
    CHECK(std::isfinite(last));
    CHECK(last < first);
    for (float v : gpu_model->parameters().values().to_host()) REQUIRE(std::isfinite(v));
}

}  // namespace sp::test
