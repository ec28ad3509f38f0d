// PyTorch as the independent oracle of the CPU reference. For every architecture of the zoo (at
// small widths and inputs, so the suite stays fast) this writes a checkpoint with its model
// description, a batch, and spinprune's eval-mode logits, train-mode logits and one training
// step's gradients of every parameter into a temporary folder; tests/torch_oracle/oracle.py loads
// the checkpoint through python/spinprune_torch (so the Python loader is tested on the same path),
// recomputes everything in float64 with PyTorch and compares within derived bounds (see its
// docstring). Compacted networks from surgery, the masked networks they came from, and networks
// with weight/kernel masks saved by save_model are checked the same way. A second case trains
// and prunes a small LeNet with the spinprune program and checks that Python's evaluation, in
// PyTorch and through ONNX in onnxruntime, gives the same top-1 as `spinprune eval`. A third
// runs the cost study's onnxruntime timing (bench/cost_study.py) on a tiny network.
//
// PyTorch is Debian's python3-torch (`make deps`), in /usr/bin/python3 unless
// $SPINPRUNE_TORCH_PYTHON names another interpreter; a missing oracle is a failure, never a skip.
#include <doctest/doctest.h>

#include <unistd.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "harness.h"
#include "nn/checkpoint.h"
#include "nn/models/model.h"
#include "pruning/mask_space.h"
#include "pruning/surgery.h"
#include "train/trainer.h"

using namespace sp;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string torch_python() {
    const char* p = std::getenv("SPINPRUNE_TORCH_PYTHON");
    return p ? p : "/usr/bin/python3";
}

// Exit status of a shell command; its output goes to `log`.
int run(const std::string& command, const fs::path& log) {
    const int status = std::system((command + " >" + log.string() + " 2>&1").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_text(const fs::path& p) {
    std::ifstream f(p);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

fs::path fresh_dir(const std::string& name) {
    fs::path p = fs::temp_directory_path() / ("spinprune_torch_oracle_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

// The oracle must be there: a suite without it would pass without checking anything.
void require_torch(const std::vector<std::string>& modules) {
    for (const std::string& m : modules) {
        INFO("the oracle needs " << torch_python() << " with Python's '" << m
                                 << "' (make deps installs python3-torch, python3-onnx and onnxruntime)");
        REQUIRE(std::system((torch_python() + " -c 'import " + m + "' >/dev/null 2>&1").c_str()) == 0);
    }
}


// Every weight, bias and BN statistic of `model` under its name, as save_model writes them.
std::vector<std::pair<std::string, const Tensor*>> named_tensors(Model& model, std::vector<Tensor>& views) {
    ParameterStore& store = model.parameters();
    views.clear();
    for (size_t i = 0; i < store.parameters().size(); ++i) views.push_back(store.value(static_cast<int>(i)));
    for (size_t i = 0; i < store.state_entries().size(); ++i) views.push_back(store.state(static_cast<int>(i)));
    std::vector<std::pair<std::string, const Tensor*>> named;
    size_t k = 0;
    for (const auto& p : store.parameters()) named.emplace_back(p.name, &views[k++]);
    for (const auto& s : store.state_entries()) named.emplace_back(s.name, &views[k++]);
    return named;
}

void save_described(const fs::path& path, Model& model) {
    std::vector<Tensor> views;
    std::map<std::string, std::string> meta;
    add_description(describe_model(model, {}, {}), meta);
    save_checkpoint(path.string(), named_tensors(model, views), meta);
}

struct Arch {
    const char* name;
    int64_t c, side;
};

// Inputs small enough for a fast suite that still pass through every layer: VGG's later pools
// are left out at 8x8 (its builder drops a pool that would shrink a side below 1).
const Arch kArchs[] = {{"lenet", 1, 12},     {"resnet20", 3, 8}, {"resnet32", 3, 8}, {"resnet56", 3, 8},
                       {"resnet110", 3, 8},  {"resnet18", 3, 8}, {"resnet34", 3, 8}, {"vgg11", 3, 8},
                       {"vgg16", 3, 8},      {"alexnet", 3, 12}, {"squeezenet", 3, 8}};
constexpr int64_t kClasses = 7, kBatch = 4;

// The architecture at small widths: every resizable set gets 3..8 channels, all different
// neighbours, so a layer wired to the wrong set fails on shapes. No dropout (PyTorch's random
// mask is not ours).
std::unique_ptr<Model> small_model(const Arch& a, uint64_t seed) {
    ModelOptions options;
    options.dropout = 0.0f;
    auto probe = make_model(a.name, a.c, a.side, a.side, kClasses, options);
    int i = 0;
    for (const ChannelSet& s : probe->channel_sets())
        if (s.resizable) options.widths[s.name] = 3 + (5 * i++) % 6;
    auto model = make_model(a.name, a.c, a.side, a.side, kClasses, options);
    model->allocate(Device::cpu, seed);
    test::randomise_bn(*model, seed + 100);
    return model;
}

// A filter state keeping about 60% of every segment (at least one unit); sets feeding a
// cross-channel LRN keep a leading range, the subsets for which masking and removal agree.
std::vector<float> filter_state(const Model& model, const MaskSpace& space, uint64_t seed) {
    std::vector<float> state(static_cast<size_t>(space.size()), 0.0f);
    uint64_t draw = 0;
    for (const MaskSegment& seg : space.segments()) {
        const bool leading = model.channel_sets()[static_cast<size_t>(seg.set)].cross_channel;
        for (int64_t u = 0; u < seg.size; ++u) {
            const bool keep = leading ? 10 * u < 6 * seg.size : stream_uniform(seed, draw++) < 0.6f;
            state[static_cast<size_t>(seg.offset + u)] = keep ? 1.0f : 0.0f;
        }
    }
    space.repair(state);
    return state;
}

std::vector<float> random_state(const MaskSpace& space, uint64_t seed) {
    std::vector<float> state(static_cast<size_t>(space.size()));
    for (size_t u = 0; u < state.size(); ++u) state[u] = stream_uniform(seed, u) < 0.5f ? 1.0f : 0.0f;
    return state;
}

}  // namespace

TEST_CASE("PyTorch oracle: every architecture's forward (eval and train) and gradients, dense, compacted and masked") {
    require_torch({"torch", "numpy"});
    const fs::path dir = fresh_dir("zoo");
    json manifest = json::array();
    uint64_t seed = 11;
    for (const Arch& a : kArchs) {
        CAPTURE(a.name);
        auto model = small_model(a, seed);
        Context ctx(Device::cpu, seed);
        Tensor x = test::random_tensor(Shape{kBatch, a.c, a.side, a.side}, Device::cpu, seed + 1);
        std::vector<float> label_values(kBatch);
        for (int64_t n = 0; n < kBatch; ++n) label_values[n] = static_cast<float>((n * 3 + seed) % kClasses);
        Tensor labels = Tensor::from_host(label_values, Shape{kBatch}, Device::cpu);
        const std::string name = a.name;
        save_described(dir / (name + ".safetensors"), *model);  // before a train forward moves the statistics

        model->set_training(false);
        Tensor logits_eval = Tensor::from_host(model->forward(ctx, x).to_host(), Shape{kBatch, kClasses}, Device::cpu);
        model->set_training(true);
        Tensor logits_train = Tensor::from_host(model->forward(ctx, x).to_host(), Shape{kBatch, kClasses}, Device::cpu);
        SoftmaxCrossEntropy loss;
        const float loss_value = loss.forward(ctx, model->forward(ctx, x), labels);
        model->backward(ctx, loss.backward(ctx));

        std::vector<std::pair<std::string, const Tensor*>> io = {
            {"input", &x}, {"labels", &labels}, {"logits_eval", &logits_eval}, {"logits_train", &logits_train}};
        ParameterStore& store = model->parameters();
        std::vector<Tensor> grads;
        grads.reserve(store.parameters().size());
        for (size_t i = 0; i < store.parameters().size(); ++i) {
            grads.push_back(store.grad(static_cast<int>(i)));
            io.emplace_back("grad." + store.parameters()[i].name, &grads.back());
        }

        // Compacted by surgery from a filter mask, and the masked network it came from.
        model->set_training(false);
        MaskSpace space(*model, MaskSpaceOptions{});
        const std::vector<float> state = filter_state(*model, space, seed + 2);
        Tensor units = Tensor::from_host(state, Shape{space.size()}, Device::cpu);
        space.attach(ctx, units);
        Tensor logits_masked = Tensor::from_host(model->forward(ctx, x).to_host(), Shape{kBatch, kClasses}, Device::cpu);
        space.detach();
        auto compact = compact_model(*model, space.kept_channels(state));
        compact->set_training(false);
        Tensor logits_compacted =
            Tensor::from_host(compact->forward(ctx, x).to_host(), Shape{kBatch, kClasses}, Device::cpu);
        save_described(dir / (name + ".compacted.safetensors"), *compact);
        io.emplace_back("logits_masked", &logits_masked);
        io.emplace_back("logits_compacted", &logits_compacted);

        save_checkpoint((dir / (name + ".io.safetensors")).string(), io, {{"loss", json(loss_value).dump()}});
        manifest.push_back({{"name", name}, {"checkpoint", name + ".safetensors"}, {"io", name + ".io.safetensors"},
                            {"eval_logits", {"logits_eval"}}, {"train", true}});
        manifest.push_back({{"name", name + " compacted"}, {"checkpoint", name + ".compacted.safetensors"},
                            {"io", name + ".io.safetensors"}, {"eval_logits", {"logits_masked", "logits_compacted"}}});
        seed += 10;
    }

    // Weight and kernel masks, saved the way the pipeline saves an unstructured pruned network.
    for (const auto& [arch, granularity] : {std::pair{kArchs[0], Granularity::weight}, {kArchs[1], Granularity::kernel}}) {
        const std::string name = std::string(arch.name) + "." + granularity_name(granularity);
        auto model = small_model(arch, seed);
        model->set_training(false);
        Context ctx(Device::cpu, seed);
        Tensor x = test::random_tensor(Shape{kBatch, arch.c, arch.side, arch.side}, Device::cpu, seed + 1);
        Tensor labels = Tensor::from_host(std::vector<float>(kBatch, 0.0f), Shape{kBatch}, Device::cpu);
        MaskSpaceOptions mo;
        mo.granularity = granularity;
        MaskSpace space(*model, mo);
        Tensor units = Tensor::from_host(random_state(space, seed + 2), Shape{space.size()}, Device::cpu);
        space.attach(ctx, units);
        Tensor logits = Tensor::from_host(model->forward(ctx, x).to_host(), Shape{kBatch, kClasses}, Device::cpu);
        std::map<std::string, const Tensor*> masks;
        json layers = json::array();
        for (const LayerWiring& w : model->wiring())
            if (const Tensor* m = w.conv ? w.conv->weight_mask() : w.linear->weight_mask()) {
                masks[w.name] = m;
                layers.push_back(w.name);
            }
        REQUIRE(!masks.empty());
        save_model((dir / (name + ".safetensors")).string(), *model, ExperimentConfig{}, Normalization{}, masks);
        space.detach();
        save_checkpoint((dir / (name + ".io.safetensors")).string(),
                        {{"input", &x}, {"labels", &labels}, {"logits_masked", &logits}}, {});
        manifest.push_back({{"name", name}, {"checkpoint", name + ".safetensors"}, {"io", name + ".io.safetensors"},
                            {"eval_logits", {"logits_masked"}}, {"weight_masks", layers}});
        seed += 10;
    }
    std::ofstream(dir / "manifest.json") << manifest.dump(1);

    const fs::path log = dir / "oracle.log";
    {
        const int status = run(torch_python() + " tests/torch_oracle/oracle.py " + dir.string(), log);
        INFO(read_text(log));  // one line per case, and every failed check
        CHECK(status == 0);
        REQUIRE(fs::exists(dir / "results.json"));
    }
    const json results = json::parse(read_text(dir / "results.json"));
    REQUIRE(results.size() == manifest.size());  // every case ran
    for (const json& r : results) {
        json failed = json::array();
        for (const json& c : r.value("checks", json::array()))
            if (!c["ok"].get<bool>()) failed.push_back(c);
        CAPTURE(r["case"].get<std::string>());
        CAPTURE(r.value("error", ""));
        CAPTURE(failed.dump());
        CHECK(r["ok"].get<bool>());
    }
    // The table for bench/results/: $SPINPRUNE_ORACLE_TABLE names where to write it.
    if (const char* table = std::getenv("SPINPRUNE_ORACLE_TABLE"))
        CHECK(run(torch_python() + " tests/torch_oracle/table.py " + dir.string() + " " + table, dir / "table.log") == 0);
    fs::remove_all(dir);
}

namespace {

// The "top-1 XX.XX%" a command printed (empty when it printed none).
std::string top1_of(const std::string& output) {
    std::smatch m;
    return std::regex_search(output, m, std::regex("top-1 ([0-9]+\\.[0-9]+)%")) ? m[1].str() : "";
}

}  // namespace

TEST_CASE("PyTorch and ONNX Runtime evaluate spinprune checkpoints with spinprune's top-1") {
    require_torch({"torch", "numpy", "onnx", "onnxruntime"});
    REQUIRE(fs::exists(test::spinprune_program()));
    const fs::path dir = fresh_dir("top1");
    // The default `make run` (EDropout on LeNet, compacted), shortened; and magnitude pruning,
    // whose unstructured masks travel in the checkpoint. Each file: spinprune eval's top-1, then
    // Python's with the runtimes listed.
    struct Case {
        std::string name, config;
        std::vector<std::pair<std::string, std::vector<std::string>>> files;
    };
    const std::string shorten = " --set data.train_subset=1200 --set data.validation=200 --set train.epochs=1"
                                " --set finetune.epochs=1";
    const std::vector<Case> cases = {
        {"default", "experiments/fashion_mnist_lenet.toml --set prune.edropout.min_epochs=1 --set prune.train_baseline=false",
         {{"pruned.safetensors", {"torch", "onnxruntime"}}}},
        {"magnitude", "experiments/fashion_mnist_lenet_magnitude.toml", {{"pruned.safetensors", {"torch"}}}}};
    for (const Case& c : cases) {
        const fs::path out = dir / c.name;
        CAPTURE(c.name);
        REQUIRE(run(test::spinprune_program() + " run --device cpu --config " + c.config + shorten + " --out " + out.string(),
                    dir / (c.name + ".log")) == 0);
        for (const auto& [file, runtimes] : c.files) {
            const std::string checkpoint = (out / file).string();
            CAPTURE(checkpoint);
            REQUIRE(run(test::spinprune_program() + " eval --device cpu --checkpoint " + checkpoint, dir / "eval.log") == 0);
            const std::string ours = top1_of(read_text(dir / "eval.log"));
            REQUIRE(!ours.empty());
            for (const std::string& runtime : runtimes) {
                CAPTURE(runtime);
                const int status = run("PYTHONPATH=python " + torch_python() + " -m spinprune_torch eval " + checkpoint +
                                           " --runtime " + runtime, dir / "python.log");
                const std::string output = read_text(dir / "python.log");
                INFO(output);
                CHECK(status == 0);
                CHECK(top1_of(output) == ours);
            }
        }
    }
    // The unstructured masks were saved with the weights.
    CHECK(!read_description(load_checkpoint((dir / "magnitude" / "pruned.safetensors").string())).weight_masks.empty());
    // An ONNX file on disk passes onnx.checker (export-onnx checks it when onnx is installed).
    const std::string onnx = (dir / "pruned.onnx").string();
    REQUIRE(run("PYTHONPATH=python " + torch_python() + " -m spinprune_torch export-onnx " +
                    (dir / "default" / "pruned.safetensors").string() + " " + onnx, dir / "export.log") == 0);
    CHECK(read_text(dir / "export.log").find("checked with onnx.checker") != std::string::npos);
    CHECK(fs::file_size(onnx) > 0);
    fs::remove_all(dir);
}

TEST_CASE("model description: round trip, older checkpoints and malformed keys are named") {
    ModelOptions options;
    options.shortcut = ShortcutOption::b;
    options.widths = {{"layer1.0.conv1", 5}};
    auto model = make_model("resnet20", 3, 8, 8, 10, options);
    model->allocate(Device::cpu, 1);
    const ModelDescription d = describe_model(*model, {0.1f, 0.2f, 0.3f}, {0.5f, 0.6f, 0.7f});
    std::vector<Tensor> views;
    const fs::path dir = fresh_dir("description");
    const std::string path = (dir / "model.safetensors").string();
    std::map<std::string, std::string> meta;
    add_description(d, meta);
    save_checkpoint(path, named_tensors(*model, views), meta);
    Checkpoint ck = load_checkpoint(path);
    const ModelDescription back = read_description(ck);
    CHECK(back.architecture == "resnet20");
    CHECK(back.input_shape == std::vector<int64_t>{3, 8, 8});
    CHECK(back.num_classes == 10);
    CHECK(back.mean == d.mean);
    CHECK(back.std == d.std);
    CHECK(back.shortcut == "B");
    CHECK(back.widths.at("layer1.0.conv1") == 5);
    CHECK(back.channel_sets.at("fc") == 10);
    CHECK(back.widths == d.widths);

    // A checkpoint from before the description: spinprune says what is missing, and so does Python.
    Checkpoint old = ck;
    for (const char* key : {"architecture", "input_shape", "num_classes", "normalization", "model_options", "widths",
                            "channel_sets", "weight_masks"})
        old.metadata.erase(key);
    CHECK_FALSE(has_description(old));
    CHECK(test::error_of([&] { read_description(old); }).find("written before spinprune stored one") != std::string::npos);
    save_checkpoint(path, old);
    require_torch({"torch"});
    CHECK(run("PYTHONPATH=python " + torch_python() + " -m spinprune_torch export-onnx " + path + " " +
                  (dir / "x.onnx").string(), dir / "python.log") == 1);
    CHECK(read_text(dir / "python.log").find("written before spinprune stored one") != std::string::npos);

    // A malformed value names the file, the key and what was expected.
    Checkpoint bad = ck;
    bad.metadata["input_shape"] = "[3, 8]";
    CHECK(test::error_of([&] { read_description(bad); })
              .find(path + ": metadata 'input_shape' is '[3, 8]', expected [C, H, W] of positive integers") == 0);
    bad = ck;
    bad.metadata["weight_masks"] = "[\"conv1\"]";
    CHECK(test::error_of([&] { read_description(bad); }).find("lacks 'conv1.weight' or 'conv1.weight_mask'") !=
          std::string::npos);
    fs::remove_all(dir);
}

TEST_CASE("cost study: onnxruntime times the dense and the compacted network at the study's batches") {
    require_torch({"torch", "numpy", "onnx", "onnxruntime"});
    const fs::path dir = fresh_dir("cost_study");
    // A small LeNet and its compacted form, saved as cost_study_bench saves its sweep's networks,
    // and a study.json with the keys the bench writes (our times are placeholders here).
    auto dense = small_model(kArchs[0], 5);
    MaskSpace space(*dense, MaskSpaceOptions{});
    auto compact = compact_model(*dense, space.kept_channels(filter_state(*dense, space, 6)));
    save_described(dir / "dense.safetensors", *dense);
    save_described(dir / "compacted.safetensors", *compact);
    const std::vector<int64_t> batches = {1, 3};
    json latency = json::array();
    for (int64_t b : batches) latency.push_back({{"batch", b}, {"dense_ms", 2.0}, {"compacted_ms", 1.0}});
    json study = {
        {"device", "cpu"}, {"device_name", "test cpu"}, {"git_revision", "test"}, {"date", "today"},
        {"command", "a test"}, {"repeats", 1}, {"rounds", 2}, {"warmup", 1}, {"cpu_threads", 1},
        {"load_average", {{"start", {1.0, 1.0, 1.0}}, {"end", nullptr}}},
        {"machinery", {{"batch", 2}, {"step_ms", 4.0}, {"rows", {{{"work", "training step"}, {"unit", "step"}, {"ms", 4.0}}}}}},
        {"models", {{{"name", "lenet"}, {"params_kept", 0.5}, {"macs_kept", 0.5}, {"dense_macs", dense->macs_per_image()},
                     {"compacted_macs", compact->macs_per_image()}, {"dense_params", dense->parameter_count()},
                     {"compacted_params", compact->parameter_count()},
                     {"checkpoints", {{"dense", "dense.safetensors"}, {"compacted", "compacted.safetensors"}}},
                     {"latency", latency}}}},
        {"unstructured", {{{"name", "lenet"}, {"latency", {{{"batch", 1}, {"dense_ms", 2.0}, {"masked_ms", 2.0}}}}}}}};
    auto study_run = [&](const json& s) {
        std::ofstream(dir / "study.json") << s.dump(1);
        return run(torch_python() + " bench/cost_study.py " + (dir / "study.json").string() + " --out " +
                       (dir / "results").string(),
                   dir / "study.log");
    };
    {
        const int status = study_run(study);
        INFO(read_text(dir / "study.log"));
        REQUIRE(status == 0);
    }
    const json out = json::parse(read_text(dir / "results" / "cpu_cost_study.json"));
    CHECK(out["onnxruntime"]["intra_op_threads"] == 1);  // the study's cpu_threads
    CHECK(!out["onnxruntime"]["version"].get<std::string>().empty());
    REQUIRE(out["models"][0]["latency"].size() == batches.size());
    for (const json& p : out["models"][0]["latency"]) {
        CAPTURE(p.dump());
        CHECK(p["dense_ms"] == 2.0);  // ours kept as measured
        for (const char* key : {"onnxruntime_dense_ms", "onnxruntime_compacted_ms"}) {
            REQUIRE(p.contains(key));
            CHECK(std::isfinite(p[key].get<double>()));
            CHECK(p[key].get<double>() > 0.0);
        }
    }
    const std::string md = read_text(dir / "results" / "cpu_cost_study.md");
    CHECK(md.find("| batch | dense ms | compacted ms | speed-up | onnxruntime dense ms | onnxruntime compacted ms | "
                  "onnxruntime speed-up | MAC ratio |") != std::string::npos);
    CHECK(md.find("\n| 3 | 2.000 | 1.000 | 2.00x | ") != std::string::npos);

    // A checkpoint that is not the network the study timed, and a study without a key, are named.
    json wrong = study;
    wrong["models"][0]["compacted_params"] = compact->parameter_count() + 1;
    CHECK(study_run(wrong) == 1);
    CHECK(read_text(dir / "study.log").find("compacted.safetensors: holds a network of " +
                                            std::to_string(compact->parameter_count()) + " parameters") != std::string::npos);
    json incomplete = study;
    incomplete.erase("rounds");
    CHECK(study_run(incomplete) == 1);
    CHECK(read_text(dir / "study.log").find("study.json: no key 'rounds'") != std::string::npos);
    fs::remove_all(dir);
}
