// Published per-conv rate lists: the notation, the publications' counting convention against
// their published figures, and the mapping onto our prunable sets.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "nn/models/model.h"
#include "pruning/baselines.h"
#include "pruning/mask_space.h"
#include "pruning/rate_lists.h"
#include "tests/harness.h"
#include "train/config.h"

using namespace sp;

namespace {

// The published lists of docs/methods.md, energy-aware, hrank (HRank's protocol).
const char* kResNet56Rates = "[0.1]+[0.6]*35+[0.0]*2+[0.6]*6+[0.4]*3+[0.1]+[0.4]+[0.1]+[0.4]+[0.1]+[0.4]+[0.1]+[0.4]";
const char* kResNet110Rates = "[0.1]+[0.4]*108";

std::unique_ptr<Model> cifar_model(const std::string& name) {
    auto model = make_model(name, 3, 32, 32, 10);
    model->allocate(Device::cpu, 1);
    return model;
}

}  // namespace

TEST_CASE("rate lists: HRank's notation, and errors naming the source and the position") {
    const std::vector<double> r = parse_rate_list(" [0.1] + [0.6]*3+[0.0] ", "x.toml: key 'prune.conv_rates'");
    CHECK(r == std::vector<double>{0.1, 0.6, 0.6, 0.6, 0.0});
    CHECK(parse_rate_list(kResNet56Rates, "m").size() == 55);
    CHECK(parse_rate_list(kResNet110Rates, "m").size() == 109);
    auto error_of = [](const std::string& text) {
        return test::error_of([&] { parse_rate_list(text, "x.toml: key 'prune.conv_rates'"); });
    };
    CHECK(error_of("").find("x.toml: key 'prune.conv_rates': an empty list") != std::string::npos);
    CHECK(error_of("[0.1]+").find("no '[' at character 7") != std::string::npos);
    CHECK(error_of("[1.5]").find("a rate outside [0, 1)") != std::string::npos);
    CHECK(error_of("[0.1]*0").find("a count that is not an integer") != std::string::npos);
    CHECK(error_of("[0.1][0.2]").find("no '+' between terms") != std::string::npos);
    CHECK(error_of("[x]").find("no rate") != std::string::npos);
    CHECK(error_of("[0.1").find("no ']'") != std::string::npos);
}

TEST_CASE("rate lists: the published convention reproduces HRank's ResNet-56 figures from the published list") {
    auto model = cifar_model("resnet56");
    const PublishedCount c = published_count(*model, parse_rate_list(kResNet56Rates, "m"));
    // Dense in the convention (convs and the classifier, no BN): the published 0.85M / 125M MACs.
    CHECK(c.dense_params == 848954);
    CHECK(c.dense_macs == 125485696);
    // Published for this list: 0.49M parameters, 62.72M "FLOPs" (MACs): −42.4% / −50.0%.
    CHECK(c.params == 489359);
    CHECK(c.macs == 62715520);
    CHECK(std::round(c.params / 1e4) / 100 == doctest::Approx(0.49));
    CHECK(std::round(c.macs / 1e4) / 100 == doctest::Approx(62.72));
    CHECK(1.0 - static_cast<double>(c.params) / c.dense_params == doctest::Approx(0.424).epsilon(0.002));
    CHECK(1.0 - static_cast<double>(c.macs) / c.dense_macs == doctest::Approx(0.500).epsilon(0.002));
    // One rate per conv, or an error naming both counts.
    CHECK_THROWS_WITH_AS(published_count(*model, {0.1, 0.2}), doctest::Contains("has 55 convs; the rate list has 2 entries"), Error);
}

TEST_CASE("rate lists: ResNet-110's list in the published convention") {
    auto model = cifar_model("resnet110");
    const PublishedCount c = published_count(*model, parse_rate_list(kResNet110Rates, "m"));
    CHECK(c.dense_params == 1719866);  // published: 1.7M / 253M MACs
    CHECK(c.dense_macs == 252887680);
    // Stem: 15 of 16 filters on 3 inputs; stages 1/2/3: 36 convs each keeping 10/16, 20/32, 39/64
    // (⌊0.4·f⌋ removed) of their filters on their full inputs; the classifier in full.
    const int64_t params = 15 * 3 * 9 + (16 * 10 + 35 * 16 * 10) * 9 + (16 * 20 + 35 * 32 * 20) * 9 +
                           (32 * 39 + 35 * 64 * 39) * 9 + 650;
    const int64_t macs = 15 * 3 * 9 * 1024 + (16 * 10 + 35 * 16 * 10) * 9 * 1024 + (16 * 20 + 35 * 32 * 20) * 9 * 256 +
                         (32 * 39 + 35 * 64 * 39) * 9 * 64 + 640;
    CHECK(c.params == params);
    CHECK(c.macs == macs);
}

TEST_CASE("rate lists: mapped onto the prunable sets, with the convs the space cannot prune reported") {
    auto model = cifar_model("resnet56");
    MaskSpace space(*model, MaskSpaceOptions{});  // a block's internal channels (option-A shortcuts)
    const MappedRates m = map_conv_rates(*model, space, parse_rate_list(kResNet56Rates, "m"));
    REQUIRE(m.segment_rates.size() == 27);
    // Block i's internal set is written by its first conv: list entry 1 + 2i.
    CHECK(m.segment_rates[0] == doctest::Approx(9.0 / 16));   // ⌊0.6·16⌋ = 9 removed
    CHECK(m.segment_rates[17] == doctest::Approx(19.0 / 32)); // stage 2's last block: entry 35, 0.6
    CHECK(m.segment_rates[18] == 0.0);                         // stage 3's first block: entry 37, 0.0
    CHECK(m.segment_rates[26] == doctest::Approx(6.0 / 64));  // entry 53: 0.1 → ⌊6.4⌋
    // The stem and the second convs (their outputs join residual additions) are not applied.
    CHECK(m.unapplied.size() == 1 + 26);  // every second conv has a rate > 0 except entry 36
    // select_by_rates removes exactly ⌊r·f⌋ filters per set, as the lists' code does.
    std::vector<float> scores(static_cast<size_t>(space.size()));
    for (size_t i = 0; i < scores.size(); ++i) scores[i] = static_cast<float>(i % 7);
    const std::vector<float> state = select_by_rates(space, scores, m.segment_rates);
    int64_t kept0 = 0;
    for (int64_t u = 0; u < space.segments()[0].size; ++u) kept0 += state[static_cast<size_t>(u)] != 0.0f;
    CHECK(kept0 == 7);
}

TEST_CASE("rate lists: a residual group whose convs have different rates is refused, naming them") {
    auto model = make_model("resnet18", 3, 32, 32, 10);  // option-B shortcuts: groups are prunable
    model->allocate(Device::cpu, 1);
    MaskSpaceOptions o;
    o.prune_residual_groups = true;
    MaskSpace space(*model, o);
    size_t convs = 0;
    for (const LayerWiring& w : model->wiring()) convs += w.conv ? 1 : 0;
    std::vector<double> rates(convs, 0.5);
    CHECK_NOTHROW(map_conv_rates(*model, space, rates));
    rates[0] = 0.25;  // the stem writes layer1's group with the blocks' second convs
    CHECK_THROWS_WITH_AS(map_conv_rates(*model, space, rates), doctest::Contains("have different rates"), Error);
}

TEST_CASE("rate lists: prune.conv_rates in a config") {
    const std::string base = "[prune]\nmethod = \"energy-aware\"\n";
    const ExperimentConfig c = parse_config(base + "conv_rates = \"[0.1]+[0.6]*35\"\n", "e.toml");
    CHECK(c.prune.conv_rates == "[0.1]+[0.6]*35");
    CHECK(parse_config(to_toml(c), "resolved").prune.conv_rates == c.prune.conv_rates);
    CHECK_THROWS_WITH_AS(parse_config(base + "conv_rates = \"[0.1]+\"\n", "e.toml"),
                         doctest::Contains("e.toml: key 'prune.conv_rates': no '['"), Error);
    CHECK_THROWS_WITH_AS(parse_config(base + "conv_rates = \"[0.1]\"\nrates = [0.5]\n", "e.toml"),
                         doctest::Contains("give one of them"), Error);
}

TEST_CASE("rate lists: the shipped experiments' lists fit their models; VGG-16 in both countings") {
    for (const char* name : {"energy_aware_resnet56_cifar10_published_rates", "energy_aware_resnet110_cifar10_published_rates",
                             "energy_aware_vgg16_cifar10"}) {
        CAPTURE(name);
        const ExperimentConfig c = load_config(std::string("experiments/") + name + ".toml");
        auto model = cifar_model(c.model.name);
        MaskSpace space(*model, MaskSpaceOptions{});
        const std::vector<double> rates = parse_rate_list(c.prune.conv_rates, name);
        const MappedRates m = map_conv_rates(*model, space, rates);
        check_rates(space, m.segment_rates);
        if (c.model.name != "vgg16") continue;
        CHECK(m.unapplied.empty());  // no residual additions: every entry applies
        const PublishedCount pc = published_count(*model, rates);
        CHECK(pc.params == 2922102);  // the counts quoted in the experiment file
        CHECK(pc.macs == 109089792);
    }
}
