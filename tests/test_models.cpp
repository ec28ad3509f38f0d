// Model zoo tests: parameter and MAC counts against the architecture formulas, forward shapes
// for every model and input, finite gradients, a finite-difference check of the residual block,
// the channel wiring (sets, residual groups, concatenations, flattened inputs), and (GPU)
// CPU-vs-CUDA forward agreement.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "nn/layers.h"
#include "nn/models/blocks.h"
#include "nn/models/model.h"
#include "kernels/error.h"
#include "tests/harness.h"

namespace {

using namespace sp;

// ---- architecture formulas (independent of the model code) --------------------------------

// He et al.'s CIFAR ResNet-(6n+2) for C x side x side inputs and K classes. Stem conv3x3 C->16
// + BN(16); stage s (width w_s = 16·2^s) has n blocks of two 3x3 convs and two BNs; only the
// first conv of stages 2 and 3 reads w_{s-1} channels. Option b adds a 1x1 conv w_{s-1}->w_s
// and a BN at stages 2 and 3. Then fc 64 -> K with bias. BN has 2 trainable floats a channel.
int64_t cifar_resnet_params(int64_t n, int64_t C, int64_t K, bool option_b) {
    const int64_t w[3] = {16, 32, 64};
    int64_t p = 9 * C * 16 + 2 * 16;
    for (int s = 0; s < 3; ++s) {
        p += n * (2 * 9 * w[s] * w[s] + 2 * 2 * w[s]);
        if (s > 0) {
            p -= 9 * w[s] * (w[s] - w[s - 1]);  // first conv reads w_{s-1}, not w_s, channels
            if (option_b) p += w[s - 1] * w[s] + 2 * w[s];
        }
    }
    return p + 64 * K + K;
}

// MACs per image: a conv output element costs C_in·9, stage s runs at side/2^s; fc 64·K.
int64_t cifar_resnet_macs(int64_t n, int64_t C, int64_t side, int64_t K) {
    const int64_t w[3] = {16, 32, 64};
    int64_t m = side * side * 16 * 9 * C;
    for (int s = 0; s < 3; ++s) {
        const int64_t hw = (side >> s) * (side >> s);
        m += hw * w[s] * 9 * w[s] * (2 * n);
        if (s > 0) m -= hw * w[s] * 9 * (w[s] - w[s - 1]);
    }
    return m + 64 * K;
}

const std::vector<int64_t> kVgg16Cfg = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
const std::vector<int64_t> kVgg11Cfg = {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};

// VGG-BN for C x 32 x 32: conv3x3 (no bias) + BN per entry, 2x2 pools (0), then the
// classifier fc 512 (with bias) -> BN -> ReLU -> fc K.
int64_t vgg_params(int64_t C, int64_t K, const std::vector<int64_t>& cfg = kVgg16Cfg) {
    int64_t p = 0, in = C;
    for (int64_t v : cfg)
        if (v) p += 9 * in * v + 2 * v, in = v;
    return p + (512 * 512 + 512) + 2 * 512 + (512 * K + K);
}

int64_t vgg_macs(int64_t C, int64_t K, const std::vector<int64_t>& cfg = kVgg16Cfg) {
    int64_t m = 0, in = C, side = 32;
    for (int64_t v : cfg) {
        if (!v) { side /= 2; continue; }
        m += side * side * v * 9 * in;
        in = v;
    }
    return m + 512 * 512 + 512 * K;
}

int64_t sum_params(const std::vector<LayerCost>& costs) {
    int64_t s = 0;
    for (const auto& c : costs) s += c.params;
    return s;
}

Tensor random_input(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed) {
    return test::random_tensor(Shape{n, c, h, w}, Device::cpu, seed);
}

bool all_finite(const std::vector<float>& v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

}  // namespace

TEST_CASE("models: CIFAR ResNet parameter counts follow the architecture") {
    // Published counts (He et al. 2016, Table 6; the common PyTorch reference): 0.27M, 0.85M, 1.7M.
    CHECK(cifar_resnet_params(3, 3, 10, false) == 269722);
    CHECK(cifar_resnet_params(9, 3, 10, false) == 853018);
    const struct { const char* name; int64_t n; } nets[] = {{"resnet20", 3}, {"resnet32", 5}, {"resnet56", 9}, {"resnet110", 18}};
    for (const auto& net : nets) {
        CAPTURE(net.name);
        auto a = make_model(net.name, 3, 32, 32, 10);
        CHECK(a->parameter_count() == cifar_resnet_params(net.n, 3, 10, false));
        CHECK(sum_params(a->layer_costs()) == a->parameter_count());
        ModelOptions ob;
        ob.shortcut = ShortcutOption::b;
        auto b = make_model(net.name, 3, 32, 32, 10, ob);
        CHECK(b->parameter_count() == cifar_resnet_params(net.n, 3, 10, true));
        // Shape-independent parameters; only the stem depends on the input channels.
        auto gray = make_model(net.name, 1, 28, 28, 100);
        CHECK(gray->parameter_count() == cifar_resnet_params(net.n, 1, 100, false));
    }
    auto r110 = make_model("resnet110", 3, 32, 32, 10);
    CHECK(std::abs(r110->parameter_count() - 1.73e6) < 0.01e6);
}

TEST_CASE("models: MACs per image of ResNet-56, ResNet-20 and VGG-16") {
    auto r56 = make_model("resnet56", 3, 32, 32, 10);
    CHECK(r56->macs_per_image() == cifar_resnet_macs(9, 3, 32, 10));
    CHECK(std::abs(r56->macs_per_image() - 125.5e6) < 0.1e6);  // "125M" in the pruning papers
    auto r20 = make_model("resnet20", 3, 32, 32, 10);
    CHECK(r20->macs_per_image() == cifar_resnet_macs(3, 3, 32, 10));  // ~41M

    auto vgg = make_model("vgg16", 3, 32, 32, 10);
    CHECK(vgg->macs_per_image() == vgg_macs(3, 10));
    CHECK(std::abs(vgg->macs_per_image() - 313.5e6) < 0.1e6);  // Li et al. 2017: 3.13e8
    // 14.72M with the one-linear classifier; Li et al.'s 15.0M adds a 512x512 hidden fc.
    CHECK(vgg->parameter_count() == vgg_params(3, 10));
    CHECK(vgg->parameter_count() == 14987722);  // HRank's VGG-16: 14.98M
    CHECK(sum_params(vgg->layer_costs()) == vgg->parameter_count());
    auto vgg11 = make_model("vgg11", 3, 32, 32, 10);  // configuration A with the same classifier
    CHECK(vgg11->parameter_count() == vgg_params(3, 10, kVgg11Cfg));
    CHECK(vgg11->macs_per_image() == vgg_macs(3, 10, kVgg11Cfg));

    // ResNet-18 (CIFAR variant with projection shortcuts): 11,173,962 parameters.
    auto r18 = make_model("resnet18", 3, 32, 32, 10);
    CHECK(r18->parameter_count() == 11173962);
    CHECK(sum_params(r18->layer_costs()) == r18->parameter_count());
    // ResNet-34, same family with 3/4/6/3 blocks: 21,282,122 (the CIFAR ResNet-34 of kuangliu/pytorch-cifar).
    auto r34 = make_model("resnet34", 3, 32, 32, 10);
    CHECK(r34->parameter_count() == 21282122);
    CHECK(sum_params(r34->layer_costs()) == r34->parameter_count());
}

TEST_CASE("models: layer costs report kinds, shapes and only conv/linear MACs") {
    auto lenet = make_model("lenet", 1, 28, 28, 10);
    auto costs = lenet->layer_costs();
    REQUIRE(costs.size() == 12);
    CHECK(costs[0].name == "conv1");
    CHECK(costs[0].kind == "conv");
    CHECK(costs[0].output == Shape{16, 28, 28});
    CHECK(costs[0].macs == 16 * 28 * 28 * 9);
    CHECK(costs[0].params == 16 * 9);
    CHECK(costs[1].kind == "batchnorm");
    CHECK(costs[1].params == 32);
    CHECK(costs[3].kind == "maxpool");
    CHECK(costs[3].macs == 0);
    CHECK(costs[8].output == Shape{32 * 7 * 7});
    CHECK(costs[9].macs == 32 * 7 * 7 * 64);
    CHECK(costs.back().output == Shape{10});
    const int64_t expected = 16 * 28 * 28 * 9 + 32 * 14 * 14 * 16 * 9 + 32 * 7 * 7 * 64 + 64 * 10;
    CHECK(lenet->macs_per_image() == expected);
}

TEST_CASE("models: forward gives (N, classes) logits for every model on 1x28x28 and 3x32x32") {
    const struct { int64_t c, h, w; } inputs[] = {{1, 28, 28}, {3, 32, 32}};
    for (const auto& name : model_names()) {
        for (const auto& in : inputs) {
            CAPTURE(name);
            CAPTURE(in.c);
            auto model = make_model(name, in.c, in.h, in.w, 10);
            auto costs = model->layer_costs();
            CHECK(costs.back().output == Shape{10});
            if (name == "vgg16" || name == "vgg11") {  // 28x28 reaches 1x1 after four pools: the fifth is left out
                auto pools = std::count_if(costs.begin(), costs.end(), [](const LayerCost& c) { return c.kind == "maxpool"; });
                CHECK(pools == (in.h == 28 ? 4 : 5));
            }
            // The deep ones only by shape inference: their CPU forward is slow for this suite.
            if (name == "resnet110" || name == "resnet56" || name == "resnet32") continue;
            model->allocate(Device::cpu, 7);
            Context ctx(Device::cpu, 7);
            Tensor x = random_input(2, in.c, in.h, in.w, 11);
            Tensor& logits = model->forward(ctx, x);
            CHECK(logits.shape() == Shape{2, 10});
            CHECK(all_finite(logits.to_host()));
        }
    }
}

TEST_CASE("models: backward yields finite, non-zero parameter gradients") {
    for (const char* name : {"lenet", "resnet20", "squeezenet", "alexnet"}) {
        CAPTURE(name);
        auto model = make_model(name, 3, 32, 32, 10);
        model->allocate(Device::cpu, 3);
        Context ctx(Device::cpu, 3);
        Tensor x = random_input(2, 3, 32, 32, 5);
        Tensor labels = Tensor::from_host({1.0f, 7.0f}, Shape{2}, Device::cpu);
        SoftmaxCrossEntropy loss;
        Tensor& logits = model->forward(ctx, x);
        float l = loss.forward(ctx, logits, labels);
        CHECK(std::isfinite(l));
        model->backward(ctx, loss.backward(ctx));
        auto grads = model->parameters().grads().to_host();
        CHECK(all_finite(grads));
        // Every trainable layer receives some gradient (SqueezeNet's final ReLU may zero a
        // class, so look per layer at the weights feeding the features).
        for (const auto& p : model->wiring()) {
            CAPTURE(p.name);
            auto g = (p.conv ? p.conv->weight_grad() : p.linear->weight_grad()).to_host();
            CHECK(std::any_of(g.begin(), g.end(), [](float v) { return v != 0.0f; }));
        }
    }
}

namespace {

// Finite-difference check of one BasicBlock w.r.t. its input and conv1's weight (and the
// projection's weight with option b), in training mode (batch-statistics BN).
void check_block(int64_t in, int64_t planes, int64_t stride, ShortcutOption option) {
    ParameterStore store;
    BasicBlock block(store, "blk", in, planes, stride, option);
    store.allocate(Device::cpu, 21);
    Context ctx(Device::cpu, 21);
    const int64_t N = 2, H = 4, W = 4;
    Tensor x = random_input(N, in, H, W, 31);
    Tensor& y0 = block.forward(ctx, x);
    const Shape out = y0.shape();
    auto upstream = test::random_values(out.numel(), 41);
    Tensor dy = Tensor::from_host(upstream, out, Device::cpu);
    Tensor& dx = block.backward(ctx, dy);
    auto dx_analytic = dx.to_host();
    auto dw1_analytic = block.conv1().weight_grad().to_host();
    std::vector<float> dws_analytic;
    if (block.shortcut_conv()) dws_analytic = block.shortcut_conv()->weight_grad().to_host();

    // Kinks: the ReLU patterns (hidden and output) at the unperturbed point.
    auto pattern = [&]() {
        Tensor& y = block.forward(ctx, x);
        std::vector<bool> p;
        for (float v : block.hidden().to_host()) p.push_back(v > 0.0f);
        for (float v : y.to_host()) p.push_back(v > 0.0f);
        return p;
    };
    const auto base = pattern();
    // A coordinate is skipped when any of the central-difference points flips a ReLU.
    auto crosses_kink = [&](Tensor& t, double step) {
        return [&t, &pattern, &base, step](int64_t i) {
            float* d = t.data();
            const float saved = d[i];
            bool flips = false;
            for (double s : {step, -step, step / 2, -step / 2}) {
                d[i] = static_cast<float>(saved + s);
                flips = flips || pattern() != base;
            }
            d[i] = saved;
            return flips;
        };
    };
    auto loss = [&]() { return test::dot(upstream, block.forward(ctx, x)); };

    // Rounding of L: each output ends a chain of float reductions (conv1, BN1 statistics, conv2,
    // projection, BN2 statistics, the add) of total length n over BN-normalised values, so its
    // error is within gamma(n)(1 + |y_i|); L sums |upstream_i| times that.
    const int64_t P = out[2], Q = out[3];
    const int64_t n = 9 * in + 9 * planes + in + 2 * N * P * Q + 2;
    auto y_host = block.forward(ctx, x).to_host();
    double terms = 0.0;
    for (size_t i = 0; i < y_host.size(); ++i) terms += std::fabs(upstream[i]) * (1.0 + std::fabs(y_host[i]));

    test::GradCheckOptions opt;
    opt.step = 1e-2;
    opt.reduction_length = n;
    opt.terms_bound = terms;
    opt.skip = crosses_kink(x, opt.step);
    test::check_gradient("block dx", x, dx_analytic, loss, opt);
    // A weight moves every output position of its channel (and, through the batch statistics,
    // all of them a little), so it meets ReLU kinks far more often: a smaller step.
    opt.step = 2.5e-3;
    Tensor w1 = block.conv1().weight();
    opt.skip = crosses_kink(w1, opt.step);
    test::check_gradient("block dconv1", w1, dw1_analytic, loss, opt);
    if (block.shortcut_conv()) {
        Tensor ws = block.shortcut_conv()->weight();
        opt.skip = crosses_kink(ws, opt.step);
        test::check_gradient("block dshortcut", ws, dws_analytic, loss, opt);
    }
}

}  // namespace

TEST_CASE("models: residual block gradients match finite differences") {
    SUBCASE("identity shortcut") { check_block(4, 4, 1, ShortcutOption::a); }
    SUBCASE("option a: subsample + zero channels") { check_block(2, 4, 2, ShortcutOption::a); }
    SUBCASE("option b: 1x1 conv + BN") { check_block(2, 4, 2, ShortcutOption::b); }
}

namespace {

const ChannelSet& set_of(const Model& m, int id) { return m.channel_sets().at(static_cast<size_t>(id)); }

}  // namespace

TEST_CASE("models: channel wiring of resnet20 (option a): sets, groups, parents") {
    auto model = make_model("resnet20", 3, 32, 32, 10);
    const auto& sets = model->channel_sets();
    const auto& layers = model->wiring();
    REQUIRE(layers.size() == 20);  // the 19 convs and the fc that give ResNet-20 its name
    // input, layer1 (stem group), 3 hidden sets, layer2, 3 hidden, layer3, 3 hidden, logits.
    REQUIRE(sets.size() == 1 + 3 + 9 + 1);
    CHECK(sets[0].kind == ChannelSet::Kind::input);
    CHECK(sets[0].size == 3);
    for (size_t i = 0; i < sets.size(); ++i) CHECK(sets[i].id == static_cast<int>(i));

    const int g1 = model->find_set("layer1"), g2 = model->find_set("layer2"), g3 = model->find_set("layer3");
    const int groups[3] = {g1, g2, g3};
    for (int s = 0; s < 3; ++s) {
        const ChannelSet& g = set_of(*model, groups[s]);
        CHECK(g.kind == ChannelSet::Kind::residual_group);
        CHECK(g.size == (16 << s));
        CHECK(g.parent == (s == 0 ? -1 : groups[s - 1]));
        CHECK(g.parent_offset == (s == 0 ? 0 : (16 << s) / 4));
        CHECK_FALSE(g.resizable);  // option a: the zero padding fixes the widths
        CHECK_FALSE(g.prunable());
    }

    CHECK(layers[0].name == "conv1");
    CHECK(layers[0].conv != nullptr);
    CHECK(layers[0].bn != nullptr);
    CHECK(layers[0].bn->name() == "bn1");
    CHECK(layers[0].in_set == 0);
    CHECK(layers[0].out_set == g1);
    for (int s = 0; s < 3; ++s) {
        for (int b = 0; b < 3; ++b) {
            const auto& c1 = layers[static_cast<size_t>(1 + 6 * s + 2 * b)];
            const auto& c2 = layers[static_cast<size_t>(2 + 6 * s + 2 * b)];
            const std::string prefix = "layer" + std::to_string(s + 1) + "." + std::to_string(b);
            CAPTURE(prefix);
            CHECK(c1.name == prefix + ".conv1");
            CHECK(c2.name == prefix + ".conv2");
            CHECK(c1.bn->name() == prefix + ".bn1");
            CHECK(c2.bn->name() == prefix + ".bn2");
            // The block's inner channels are their own prunable set, named after conv1.
            const ChannelSet& hidden = set_of(*model, c1.out_set);
            CHECK(hidden.name == prefix + ".conv1");
            CHECK(hidden.kind == ChannelSet::Kind::layer_output);
            CHECK(hidden.prunable());
            CHECK(hidden.resizable);
            CHECK(hidden.size == (16 << s));
            CHECK(c1.in_set == (b == 0 && s > 0 ? groups[s - 1] : groups[s]));
            CHECK(c2.in_set == c1.out_set);
            CHECK(c2.out_set == groups[s]);
        }
    }
    const auto& fc = layers.back();
    CHECK(fc.name == "fc");
    CHECK(fc.linear != nullptr);
    CHECK(fc.conv == nullptr);
    CHECK(fc.in_set == g3);
    CHECK(fc.in_spatial == 1);  // after the global average pool
    CHECK(set_of(*model, fc.out_set).kind == ChannelSet::Kind::logits);
    CHECK(set_of(*model, fc.out_set).size == 10);

    // Writers of a group: the stem and every conv2 of its stage.
    std::vector<std::string> writers;
    for (const auto& l : layers)
        if (l.out_set == g1) writers.push_back(l.name);
    CHECK(writers == std::vector<std::string>{"conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"});

    // Option b: the projections write their stage's group and read the previous one; groups
    // have no parent and are resizable.
    ModelOptions ob;
    ob.shortcut = ShortcutOption::b;
    auto model_b = make_model("resnet20", 3, 32, 32, 10, ob);
    const auto& lb = model_b->wiring();
    REQUIRE(lb.size() == 22);
    int projections = 0;
    for (const auto& p : lb) {
        if (p.name == "layer2.0.shortcut.0" || p.name == "layer3.0.shortcut.0") {
            ++projections;
            const std::string stage = p.name.substr(0, 6);
            const std::string previous = "layer" + std::to_string(stage[5] - '0' - 1);
            CHECK(p.out_set == model_b->find_set(stage));
            CHECK(p.in_set == model_b->find_set(previous));
            CHECK(p.conv->kernel() == 1);
            CHECK(p.bn->name() == stage + ".0.shortcut.1");
        }
    }
    CHECK(projections == 2);
    for (const char* g : {"layer1", "layer2", "layer3"}) {
        CAPTURE(g);
        CHECK(set_of(*model_b, model_b->find_set(g)).parent == -1);
        CHECK(set_of(*model_b, model_b->find_set(g)).resizable);
    }
}

TEST_CASE("models: SqueezeNet fire concatenations list the expand sets") {
    auto model = make_model("squeezenet", 3, 32, 32, 10);
    const auto& layers = model->wiring();
    REQUIRE(layers.size() == 1 + 8 * 3 + 1);
    const int cat = model->find_set("features.4.cat");
    REQUIRE(cat >= 0);
    const ChannelSet& c = set_of(*model, cat);
    CHECK(c.kind == ChannelSet::Kind::concat);
    CHECK(c.parts == std::vector<int>{model->find_set("features.4.expand1x1"), model->find_set("features.4.expand3x3")});
    CHECK(c.size == 128);
    CHECK_FALSE(c.resizable);
    // The next fire's squeeze (across the max-pool) reads the concatenation.
    bool found = false;
    for (const auto& l : layers) {
        if (l.name != "features.6.squeeze") continue;
        found = true;
        CHECK(l.in_set == cat);
        CHECK(l.in_spatial == 1);
        CHECK(set_of(*model, l.out_set).name == "features.6.squeeze");
        CHECK(set_of(*model, l.out_set).size == 32);
    }
    CHECK(found);
    // Both expands read the squeeze's set; the classifier conv reads the last concatenation.
    CHECK(layers[2].name == "features.3.expand1x1");
    CHECK(layers[2].in_set == layers[1].out_set);
    CHECK(layers[3].in_set == layers[1].out_set);
    CHECK(layers.back().name == "classifier.1");
    CHECK(layers.back().in_set == model->find_set("features.12.cat"));
    CHECK(set_of(*model, layers.back().out_set).kind == ChannelSet::Kind::logits);
}

TEST_CASE("models: a linear after a flatten reads its channels at H*W features (LeNet, VGG-16, AlexNet)") {
    const struct { const char* model; int64_t c, side; const char* layer; const char* reads; int64_t spatial; } cases[] = {
        {"lenet", 1, 28, "fc1", "conv2", 7 * 7},
        {"lenet", 3, 16, "fc1", "conv2", 4 * 4},
        {"vgg16", 3, 32, "classifier.0", "features.40", 1},
        {"vgg16", 3, 64, "classifier.0", "features.40", 2 * 2},
        {"alexnet", 3, 32, "fc1", "conv2", 7 * 7},  // 32 -> pool 3/2 -> 15 -> pool 3/2 -> 7
    };
    for (const auto& c : cases) {
        const std::string model_name = c.model;
        CAPTURE(model_name);
        CAPTURE(c.side);
        auto model = make_model(c.model, c.c, c.side, c.side, 10);
        bool found = false;
        for (const auto& l : model->wiring()) {
            if (l.name == c.layer) {
                found = true;
                CHECK(l.in_set == model->find_set(c.reads));
                CHECK(l.in_spatial == c.spatial);
                CHECK(l.linear->in_features() == set_of(*model, l.in_set).size * c.spatial);
            } else if (l.linear) {
                CHECK(l.in_spatial == 1);  // linear after linear
            }
        }
        CHECK(found);
    }
    // VGG's hidden classifier layer is a prunable set with its BN.
    auto vgg = make_model("vgg16", 3, 32, 32, 10);
    const auto& hidden = vgg->wiring()[vgg->wiring().size() - 2];
    CHECK(hidden.name == "classifier.0");
    CHECK(hidden.bn->name() == "classifier.1");
    CHECK(set_of(*vgg, hidden.out_set).prunable());
    // AlexNet's conv outputs pass through the cross-channel LRN.
    auto alex = make_model("alexnet", 3, 32, 32, 10);
    CHECK(set_of(*alex, alex->find_set("conv1")).cross_channel);
    CHECK_FALSE(set_of(*alex, alex->find_set("fc1")).cross_channel);
}

TEST_CASE("models: make_model rejects unknown names and wrong inputs") {
    CHECK_THROWS_AS(make_model("resnet21", 3, 32, 32, 10), sp::Error);
    auto model = make_model("lenet", 1, 28, 28, 10);
    model->allocate(Device::cpu, 1);
    Context ctx(Device::cpu, 1);
    Tensor x = random_input(2, 3, 32, 32, 1);
    CHECK_THROWS_AS(model->forward(ctx, x), sp::Error);
}

GPU_TEST_CASE("models: CPU and CUDA forward of resnet20 and lenet agree") {
    for (const char* name : {"resnet20", "lenet"}) {
        CAPTURE(name);
        auto cpu_model = make_model(name, 3, 32, 32, 10);
        auto gpu_model = make_model(name, 3, 32, 32, 10);
        cpu_model->allocate(Device::cpu, 9);  // host-side initialisation: the same weights
        gpu_model->allocate(Device::cuda, 9);
        Context cpu(Device::cpu, 9), gpu(Device::cuda, 9);
        const int64_t N = 4;
        Tensor x = random_input(N, 3, 32, 32, 13);
        Tensor xg = x.to(Device::cuda);

        // Features entering the final fc (CPU), to bound the logits' terms.
        Sequential& net = cpu_model->network();
        const Tensor* h = &x;
        for (size_t i = 0; i + 1 < net.size(); ++i) h = &net[i].forward(cpu, *h);
        auto features = h->to_host();  // (N, F)
        auto logits_cpu = cpu_model->forward(cpu, x).to_host();
        auto logits_gpu = gpu_model->forward(gpu, xg).to_host();
        gpu.synchronize();

        // Every conv/linear reduction (C·R·S or IN), every BN statistic (N·H·W) and the
        // global average (H·W) along the depth.
        int64_t chain = 0;
        Shape previous = Shape{3, 32, 32};
        for (const auto& c : cpu_model->layer_costs()) {
            if (c.kind == "conv" || c.kind == "linear") chain += c.macs / c.output.numel();
            if (c.kind == "batchnorm") chain += N * c.output[1] * c.output[2];
            if (c.kind == "global_avgpool") chain += previous[1] * previous[2];
            previous = Shape(c.output.dims());
        }
        const auto& fc = cpu_model->wiring().back();
        auto w = fc.linear->weight().to_host();  // (K, F)
        auto b = fc.linear->bias().to_host();
        const int64_t K = 10, F = static_cast<int64_t>(features.size()) / N;
        std::vector<double> expected(logits_cpu.begin(), logits_cpu.end()), bound(expected.size());
        for (int64_t n = 0; n < N; ++n)
            for (int64_t k = 0; k < K; ++k) {
                double terms = std::fabs(b[static_cast<size_t>(k)]);
                for (int64_t f = 0; f < F; ++f)
                    terms += std::fabs(w[static_cast<size_t>(k * F + f)] * features[static_cast<size_t>(n * F + f)]);
                // Each backend's features carry relative error <= gamma(chain); both backends err.
                bound[static_cast<size_t>(n * K + k)] = 2.0 * test::gamma(chain) * terms;
            }
        test::check_within(logits_gpu, expected, bound, std::string(name) + " logits");
    }
}
