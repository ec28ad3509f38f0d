// The training loop, evaluation, checkpointing and resume.
#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/cifar.h"
#include "data/idx.h"
#include "data/loader.h"
#include "data/split.h"
#include "kernels/error.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "nn/schedule.h"
#include "train/progress_line.h"
#include "train/run_dir.h"

namespace sp {

namespace {

std::atomic<int> g_stop_signal{0};

void on_stop_signal(int signal) { g_stop_signal.store(signal); }

constexpr const char* kCheckpointFormat = "spinprune-checkpoint";
constexpr const char* kCheckpointVersion = "1";

std::unique_ptr<Optimizer> make_configured_optimizer(const TrainConfig& t) {
    OptimizerHyper hyper;
    hyper.sgd.momentum = static_cast<float>(t.momentum);
    hyper.sgd.nesterov = t.nesterov;
    hyper.sgd.weight_decay = static_cast<float>(t.weight_decay);
    hyper.adam.beta1 = static_cast<float>(t.beta1);
    hyper.adam.beta2 = static_cast<float>(t.beta2);
    hyper.adam.weight_decay = static_cast<float>(t.weight_decay);
    hyper.adadelta.rho = static_cast<float>(t.rho);
    hyper.adadelta.weight_decay = static_cast<float>(t.weight_decay);
    return make_optimizer(t.optimizer, hyper);
}

LrSchedule make_configured_schedule(const TrainConfig& t) {
    ScheduleConfig s;
    s.kind = schedule_kind_from_name(t.schedule);
    s.base_lr = static_cast<float>(t.lr);
    s.gamma = static_cast<float>(t.gamma);
    s.step_epochs = static_cast<double>(t.step_size);
    for (int64_t m : t.milestones) s.milestones.push_back(static_cast<double>(m));
    s.total_epochs = static_cast<double>(t.epochs);
    s.min_lr = static_cast<float>(t.min_lr);
    s.warmup_epochs = t.warmup_epochs;
    return LrSchedule(s);
}

// Everything a resumed run needs beyond the tensors.
struct Progress {
    LoaderCursor cursor;
    int64_t optimizer_steps = 0;
    double epoch_loss_sum = 0;  // of the epoch in progress
    int64_t epoch_correct = 0, epoch_seen = 0;
    double epoch_seconds = 0;
    int64_t epoch_skipped = 0;  // steps skipped as non-finite (train.on_nonfinite = "skip")
};

std::vector<std::pair<std::string, const Tensor*>> model_tensors(Model& model, std::vector<Tensor>& views) {
    ParameterStore& store = model.parameters();
    views.clear();
    views.reserve(store.parameters().size() + store.state_entries().size());
    std::vector<std::pair<std::string, const Tensor*>> named;
    for (size_t i = 0; i < store.parameters().size(); ++i) views.push_back(store.value(static_cast<int>(i)));
    for (size_t i = 0; i < store.state_entries().size(); ++i) views.push_back(store.state(static_cast<int>(i)));
    size_t k = 0;
    for (const auto& p : store.parameters()) named.emplace_back(p.name, &views[k++]);
    for (const auto& s : store.state_entries()) named.emplace_back(s.name, &views[k++]);
    return named;
}

// The metadata every checkpoint of a model starts with: format, model, experiment, config and
// the model description (architecture, input shape, normalisation, widths) outside readers need.
std::map<std::string, std::string> model_metadata(Model& model, const ExperimentConfig& config,
                                                  const ModelDescription& description) {
    std::map<std::string, std::string> meta = {{"format", kCheckpointFormat}, {"version", kCheckpointVersion},
                                               {"model", model.name()}, {"experiment", config.name},
                                               {"config", to_toml(config)}};
    add_description(description, meta);
    return meta;
}

void save_training_checkpoint(const std::string& path, Model& model, Optimizer& optimizer, const Progress& progress,
                              const ExperimentConfig& config, const Normalization& norm, const PhaseHook* hook) {
    std::vector<Tensor> views;
    auto named = model_tensors(model, views);
    // Optimizer state without the store's alignment padding (the layout checkpoints have always had).
    optimizer.ensure_state(model.parameters());  // zeros before the first step
    std::vector<Tensor> packed_state;
    packed_state.reserve(optimizer.state().size());
    for (auto& [name, t] : optimizer.state()) {
        packed_state.push_back(model.parameters().packed(*t));
        named.emplace_back("optimizer." + name, &packed_state.back());
    }
    std::vector<std::pair<std::string, Tensor>> hook_tensors;
    std::map<std::string, std::string> hook_meta;
    if (hook) hook->save(hook_tensors, hook_meta);
    for (auto& [name, t] : hook_tensors) named.emplace_back(name, &t);
    std::map<std::string, std::string> meta = model_metadata(model, config, describe_model(model, norm.mean, norm.std));
    meta.insert({
        {"seed", std::to_string(config.seed)},
        {"epoch", std::to_string(progress.cursor.epoch)},
        {"batch", std::to_string(progress.cursor.batch)},
        {"optimizer", optimizer.name()},
        {"optimizer_steps", std::to_string(progress.optimizer_steps)},
        {"epoch_loss_sum", nlohmann::json(progress.epoch_loss_sum).dump()},
        {"epoch_correct", std::to_string(progress.epoch_correct)},
        {"epoch_seen", std::to_string(progress.epoch_seen)},
        {"epoch_seconds", nlohmann::json(progress.epoch_seconds).dump()},
        {"epoch_skipped", std::to_string(progress.epoch_skipped)},
    });
    meta.insert(hook_meta.begin(), hook_meta.end());
    save_checkpoint(path, named, meta);
}

void restore_model(Model& model, const Checkpoint& ck) {
    SP_REQUIRE(ck.meta("format") == kCheckpointFormat, ck.path << ": not a spinprune checkpoint");
    SP_REQUIRE(ck.meta("model") == model.name(),
               ck.path << ": checkpoint holds model '" << ck.meta("model") << "', the config asks for '" << model.name() << "'");
    std::vector<Tensor> views;
    for (auto& [name, t] : model_tensors(model, views)) {
        const CheckpointEntry& e = ck.get(name, t->shape());
        const_cast<Tensor*>(t)->copy_from(Tensor::view(const_cast<float*>(e.values.data()), e.shape, Device::cpu));
    }
}

int64_t meta_int(const Checkpoint& ck, const std::string& key) {
    const std::string& v = ck.meta(key);
    size_t used = 0;
    try {
        const int64_t value = std::stoll(v, &used);
        if (used == v.size()) return value;
    } catch (const std::exception&) {
    }
    fail(ck.path + ": metadata '" + key + "' is not an integer: '" + v + "'", __FILE__, __LINE__);
}

double meta_double(const Checkpoint& ck, const std::string& key) {
    const std::string& v = ck.meta(key);
    const nlohmann::json parsed = nlohmann::json::parse(v, nullptr, /*allow_exceptions=*/false);
    SP_REQUIRE(parsed.is_number(), ck.path << ": metadata '" << key << "' is not a number: '" << v << "'");
    return parsed.get<double>();
}

Progress restore_training(Model& model, Optimizer& optimizer, const Checkpoint& ck) {
    restore_model(model, ck);
    SP_REQUIRE(ck.meta("optimizer") == optimizer.name(), ck.path << ": checkpoint was trained with optimizer '"
                                                                  << ck.meta("optimizer") << "', the config asks for '"
                                                                  << optimizer.name() << "'");
    optimizer.ensure_state(model.parameters());
    const ParameterStore& store = model.parameters();
    for (auto& [name, t] : optimizer.state()) {
        const CheckpointEntry& e = ck.get("optimizer." + name, Shape{store.parameter_count()});
        store.unpack(Tensor::view(const_cast<float*>(e.values.data()), e.shape, Device::cpu), *t);
    }
    Progress p;
    p.cursor.epoch = meta_int(ck, "epoch");
    p.cursor.batch = meta_int(ck, "batch");
    p.optimizer_steps = meta_int(ck, "optimizer_steps");
    optimizer.set_steps(p.optimizer_steps);
    p.epoch_loss_sum = meta_double(ck, "epoch_loss_sum");
    p.epoch_correct = meta_int(ck, "epoch_correct");
    p.epoch_seen = meta_int(ck, "epoch_seen");
    p.epoch_seconds = meta_double(ck, "epoch_seconds");
    p.epoch_skipped = ck.metadata.count("epoch_skipped") ? meta_int(ck, "epoch_skipped") : 0;  // older checkpoints lack it
    return p;
}

// runs/<experiment>/<local date-time>: a new directory for every run that names none.
std::string default_run_dir(const std::string& experiment) {
    std::time_t now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
    std::string dir = "runs/" + experiment + "/" + stamp;
    for (int i = 2; std::filesystem::exists(dir); ++i) dir = "runs/" + experiment + "/" + stamp + "-" + std::to_string(i);
    return dir;
}

// Floats of one training checkpoint: weights, BN statistics and the optimizer's state (one
// tensor of the flat buffer's length per slot), plus room for the header (names, shapes, the config).
uint64_t checkpoint_bytes(const ParameterStore& store, Optimizer& optimizer) {
    const uint64_t floats = static_cast<uint64_t>(store.parameter_floats()) * (1 + optimizer.state().size()) +
                            static_cast<uint64_t>(store.state_floats());
    const uint64_t header = (uint64_t{64} << 10) + 256 * (store.parameters().size() + store.state_entries().size());
    return floats * sizeof(float) + header;
}

// Indices of the non-finite values among `values`: how many, and the first (-1: none).
struct NonFinite {
    int64_t count = 0, first = -1;
};
NonFinite find_nonfinite(const float* values, int64_t n) {
    NonFinite r;
    for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(values[i]) && r.count++ == 0) r.first = i;
    return r;
}

// Names of the entries of `infos` (offsets into `flat`) that hold a non-finite value.
std::vector<std::string> nonfinite_entries(const std::vector<ParameterInfo>& infos, const std::vector<float>& flat) {
    std::vector<std::string> names;
    for (const ParameterInfo& p : infos)
        if (find_nonfinite(flat.data() + p.offset, p.shape.numel()).count > 0) names.push_back(p.name);
    return names;
}

std::string join(const std::vector<std::string>& names, size_t at_most, const char* separator = ", ") {
    std::string s;
    for (size_t i = 0; i < names.size() && i < at_most; ++i) s += (i ? separator : "") + names[i];
    if (names.size() > at_most) s += ", ... (" + std::to_string(names.size()) + " in all)";
    return s;
}

}  // namespace

bool gradients_finite(Context& ctx, ParameterStore& store, Tensor& partials) {
    const int64_t n = store.parameter_floats();  // the padding's gradients are zero
    if (n == 0) return true;
    // Chunk c of (1, chunks, per_chunk) sums gradients [c·per_chunk, (c+1)·per_chunk); the
    // tail (n mod chunks) is one more sum.
    const int64_t chunks = std::min<int64_t>(1024, n), per_chunk = n / chunks, tail = n - chunks * per_chunk;
    const int64_t sums = chunks + (tail > 0 ? 1 : 0);
    const Device device = ctx.device();
    if (!partials.defined() || partials.numel() != sums || partials.device() != device) partials = Tensor(Shape{sums}, device);
    float* grads = store.grads().data();
    Tensor chunk_sums = Tensor::view(partials.data(), Shape{chunks}, device);
    channel_sum(ctx, Tensor::view(grads, Shape{1, chunks, per_chunk}, device), chunk_sums, GradMode::overwrite);
    if (tail > 0) {
        Tensor tail_sum = Tensor::view(partials.data() + chunks, Shape{1}, device);
        channel_sum(ctx, Tensor::view(grads + chunks * per_chunk, Shape{1, 1, tail}, device), tail_sum, GradMode::overwrite);
    }
    const std::vector<float> host = partials.to_host();
    return find_nonfinite(host.data(), sums).count == 0;
}

std::string describe_nonfinite(Model& model, const Tensor& images, bool check_gradients) {
    std::vector<std::string> found;
    const std::vector<float> x = images.to_host();
    const NonFinite input = find_nonfinite(x.data(), static_cast<int64_t>(x.size()));
    if (input.count > 0) {
        const int64_t per_image = images.numel() / std::max<int64_t>(images.dim(0), 1);
        found.push_back("the input batch holds " + std::to_string(input.count) + " non-finite values (the first in image " +
                        std::to_string(input.first / std::max<int64_t>(per_image, 1)) + " of the batch)");
    }
    ParameterStore& store = model.parameters();
    const std::vector<std::string> bad_values = nonfinite_entries(store.parameters(), store.values().to_host());
    if (!bad_values.empty()) found.push_back("non-finite parameter values in " + join(bad_values, 4));
    const std::vector<std::string> bad_states = nonfinite_entries(store.state_entries(), store.states().to_host());
    if (!bad_states.empty()) found.push_back("non-finite running statistics in " + join(bad_states, 4));
    for (const LayerWiring& layer : model.wiring()) {
        const Tensor* y = layer.module ? layer.module->last_output() : nullptr;
        if (!y || !y->defined()) continue;
        const std::vector<float> out = y->to_host();
        if (find_nonfinite(out.data(), static_cast<int64_t>(out.size())).count > 0) {
            found.push_back("the first layer whose output is non-finite is " + layer.name);
            break;
        }
    }
    if (check_gradients) {
        const std::vector<std::string> bad_grads = nonfinite_entries(store.parameters(), store.grads().to_host());
        if (!bad_grads.empty())
            // Backward runs from the output: the last parameter (in forward order) with a bad
            // gradient is where the pass first produced one.
            found.push_back("non-finite gradients in " + std::to_string(bad_grads.size()) + " of " +
                            std::to_string(store.parameters().size()) + " parameters, first (nearest the output) in " +
                            bad_grads.back());
    }
    if (found.empty()) return "the inputs, parameters and layer outputs are finite (the loss itself overflowed)";
    return join(found, found.size(), "; ");
}

uint64_t training_checkpoint_bytes(Model& model, const TrainConfig& train) {
    std::unique_ptr<Optimizer> optimizer = make_configured_optimizer(train);
    return checkpoint_bytes(model.parameters(), *optimizer);
}

void install_stop_handlers() {
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
}

Dataset load_experiment_data(const DataConfig& d, bool train) {
    if (d.dataset == "fashion-mnist") return load_fashion_mnist(d.dir.empty() ? fashion_mnist_dir() : d.dir, train);
    SP_REQUIRE(d.dataset == "cifar10" || d.dataset == "cifar100", "unknown dataset '" << d.dataset << "'");
    const bool ten = d.dataset == "cifar10";
    const std::string dir = !d.dir.empty() ? d.dir : ten ? "data/cifar-10" : "data/cifar-100";
    SP_REQUIRE(std::filesystem::exists(dir), d.dataset << ": no directory " << dir << " (run `make data-" << d.dataset
                                                     << "` on a machine with internet access, or set data.dir)");
    return ten ? load_cifar10(dir, train) : load_cifar100(dir, train);
}

ExperimentData prepare_experiment_data(const ExperimentConfig& config) {
    Dataset full_train = load_experiment_data(config.data, true);
    if (config.data.train_subset > 0 && config.data.train_subset < full_train.size()) {
        std::vector<int64_t> first(static_cast<size_t>(config.data.train_subset));
        for (size_t i = 0; i < first.size(); ++i) first[i] = static_cast<int64_t>(i);
        full_train = subset(full_train, first, full_train.name);
    }
    SP_REQUIRE(config.data.validation < full_train.size(),
               config.source << ": data.validation = " << config.data.validation << " leaves no training images (the set has "
                             << full_train.size() << ")");
    ExperimentData data{split_validation(full_train, config.data.validation, static_cast<uint64_t>(config.seed)),
                        load_experiment_data(config.data, false), Normalization{}};
    if (config.data.normalize) data.norm = compute_normalization(data.split.train);
    return data;
}

EvalResult evaluate(Context& ctx, Model& model, const Dataset& data, const Normalization& norm, int64_t batch_size) {
    LoaderOptions lo;
    lo.batch_size = batch_size;
    lo.shuffle = false;
    lo.normalization = norm;
    lo.device = ctx.device();
    BatchLoader loader(data, lo);
    EvalModeScope eval(model);
    EvalResult r;
    double loss_sum = 0;
    int64_t top1 = 0, top5 = 0;
    const int k5 = static_cast<int>(std::min<int64_t>(5, model.num_classes()));
    for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
        Batch batch = loader.next();
        Tensor& logits = model.forward(ctx, batch.images);
        const int64_t n = batch.labels.numel();
        loss_sum += static_cast<double>(softmax_cross_entropy(ctx, logits, batch.labels, 0.0f, nullptr)) * n;
        top1 += topk_correct(ctx, logits, batch.labels, 1);
        top5 += topk_correct(ctx, logits, batch.labels, k5);
        r.images += n;
    }
    if (r.images > 0) {
        r.loss = loss_sum / r.images;
        r.top1 = 100.0 * top1 / r.images;
        r.top5 = 100.0 * top5 / r.images;
    }
    return r;
}

void load_model_weights(Model& model, const std::string& checkpoint_path) {
    restore_model(model, load_checkpoint(checkpoint_path));
}

std::string checkpoint_file(const std::string& phase) {
    return phase == "train" ? "checkpoint.safetensors" : phase + ".checkpoint.safetensors";
}

Run::Run(const ExperimentConfig& cfg, const TrainOptions& opts) : config(cfg), options(opts) {
    start = Clock::now();
    std::string why;
    device = resolve_device(options.device.empty() ? config.device : options.device, &why);
    if (!options.quiet) std::printf("%s\n", why.c_str());
    SP_REQUIRE(!options.resume || !options.out_dir.empty(), "--resume needs --out: the run directory to continue");
    dir = std::make_unique<RunDir>(options.out_dir.empty() ? default_run_dir(config.name) : options.out_dir);
    // config.toml marks a started run.
    const bool started = std::filesystem::exists(dir->file("config.toml"));
    SP_REQUIRE(!started || options.resume,
               dir->path() << " already holds a run: pass --resume to continue it or choose another --out");
    SP_REQUIRE(!options.resume || started, "--resume: no run in " << dir->path() << " (no config.toml)");
    if (started) {
        // A resumed run must continue the same experiment. The saved config is read back and
        // resolved again, so keys added to spinprune since the run started take their defaults
        // and keys moved since are read at their new place, instead of making every older run
        // differ.
        const std::vector<std::string> changes = config_changes(load_saved_config(dir->file("config.toml")), config);
        SP_REQUIRE(changes.empty(), "--resume: the config differs from the one " << dir->path()
                                    << " started with (its config.toml): " << join(changes, 8, "; "));
        std::ifstream elapsed(dir->file("elapsed.json"));
        if (elapsed) {
            const nlohmann::json e = nlohmann::json::parse(elapsed, nullptr, /*allow_exceptions=*/false);
            if (e.is_object()) earlier_seconds = e.value("seconds", 0.0);
        }
    }
    dir->write_text("config.toml", to_toml(config));
    environment = environment_info(device);
    dir->write_json("environment.json", environment);
    data = prepare_experiment_data(config);
    ctx = std::make_unique<Context>(device, static_cast<uint64_t>(config.seed), config.deterministic);
    ctx->set_math(math_mode_from_name(config.math));
    model = build_model(config, data.split.train, device);
    if (!options.quiet)
        std::printf("%s: %s on %s (%lld train / %lld validation / %lld test images), %lld parameters, %lld MACs per image\n",
                    config.name.c_str(), model->name().c_str(), data.split.train.name.c_str(),
                    static_cast<long long>(data.split.train.size()), static_cast<long long>(data.split.validation.size()),
                    static_cast<long long>(data.test.size()), static_cast<long long>(model->parameter_count()),
                    static_cast<long long>(model->macs_per_image()));
}

double Run::seconds() const { return earlier_seconds + seconds_since(start); }

void Run::save_elapsed() const { dir->write_json("elapsed.json", {{"seconds", seconds()}}); }

std::unique_ptr<Model> build_model(const ExperimentConfig& config, const Dataset& shape_from, Device device,
                                   const std::map<std::string, int64_t>& widths) {
    ModelOptions mo;
    mo.shortcut = config.model.shortcut == "B" ? ShortcutOption::b : ShortcutOption::a;
    mo.widths = config.model.widths;  // the configured variant; a compacted model's widths win
    for (const auto& [name, width] : widths) mo.widths[name] = width;
    std::unique_ptr<Model> model = make_model(config.model.name, shape_from.channels(), shape_from.height(),
                                              shape_from.width(), shape_from.num_classes, mo);
    model->allocate(device, static_cast<uint64_t>(config.seed));
    return model;
}

bool fit(Run& run, Model& model, const TrainConfig& train, const std::string& phase, PhaseHook* hook) {
    const ExperimentConfig& config = run.config;
    const TrainOptions& options = run.options;
    Context& ctx = *run.ctx;
    const Device device = ctx.device();
    const TrainValidationSplit& split = run.data.split;
    const std::string checkpoint_path = run.dir->file(checkpoint_file(phase));
    std::unique_ptr<Optimizer> optimizer = make_configured_optimizer(train);
    LrSchedule schedule = make_configured_schedule(train);

    LoaderOptions lo;
    lo.batch_size = train.batch_size;
    lo.shuffle = true;
    lo.drop_last = true;  // equal-sized steps; BN never sees a batch of one
    lo.seed = static_cast<uint64_t>(config.seed);
    lo.augment = config.data.augment ? cifar_augment() : AugmentOptions{};
    lo.normalization = run.data.norm;
    lo.device = device;
    BatchLoader loader(split.train, lo);
    SP_REQUIRE(loader.batches_per_epoch() > 0, config.source << ": " << phase << ".batch_size " << train.batch_size
                                                             << " exceeds the " << split.train.size() << " training images");

    Progress progress;
    const bool resumed = std::filesystem::exists(checkpoint_path);
    if (resumed) {
        Checkpoint ck = load_checkpoint(checkpoint_path);
        progress = restore_training(model, *optimizer, ck);
        if (hook) hook->restore(ctx, ck);
    }
    // Epochs after the checkpoint are redone, every epoch of the phase when it has none yet: their
    // records (a crash between an epoch's metrics line and its checkpoint, the first one included)
    // go, to be logged again.
    run.dir->truncate_metrics(phase, progress.cursor.epoch);  // epochs 1..cursor.epoch are done
    run.phase_seconds[phase] = run.dir->logged_seconds(phase);
    if (resumed && !options.quiet && progress.cursor.epoch < train.epochs)
        std::printf("%s: resumed %s at epoch %lld, batch %lld\n", phase.c_str(), checkpoint_path.c_str(),
                    static_cast<long long>(progress.cursor.epoch), static_cast<long long>(progress.cursor.batch));
    SP_REQUIRE(progress.cursor.epoch >= 0 && progress.cursor.epoch <= train.epochs && progress.cursor.batch >= 0 &&
                   progress.cursor.batch <= loader.batches_per_epoch(),
               checkpoint_path << ": its position (epoch " << progress.cursor.epoch << ", batch " << progress.cursor.batch
                               << ") lies outside this phase's " << train.epochs << " epochs of "
                               << loader.batches_per_epoch() << " batches");
    // A phase stopped after the last batch of an epoch resumes at its evaluation.
    if (progress.cursor.batch < loader.batches_per_epoch()) loader.set_cursor(progress.cursor);
    // Room for a checkpoint written beside the previous one, and for the final model.
    if (progress.cursor.epoch < train.epochs) {
        const ParameterStore& store = model.parameters();
        const uint64_t model_bytes = static_cast<uint64_t>(store.parameter_floats() + store.state_floats()) * sizeof(float);
        run.dir->require_free_space(checkpoint_bytes(store, *optimizer) + model_bytes + (uint64_t{1} << 20),
                                    phase + " checkpoints of " + model.name());
    }

    SoftmaxCrossEntropy loss_fn(static_cast<float>(train.label_smoothing));
    // The numerics guard: a step whose loss or gradients are not finite stops the phase or is
    // skipped; a skipped step also undoes its forward pass's update of the BN statistics.
    const bool skip_nonfinite = train.on_nonfinite == "skip";
    Tensor grad_partials, states_before_step;
    ParameterStore& store = model.parameters();
    const int64_t batches = loader.batches_per_epoch();
    bool stopped = false;
    model.set_training(true);

    while (progress.cursor.epoch < train.epochs && !stopped) {
        const int64_t epoch = progress.cursor.epoch;
        auto epoch_start = Clock::now();
        const double seconds_before = progress.epoch_seconds;
        float lr = 0;
        ProgressLine line(phase + " epoch " + std::to_string(epoch + 1) + "/" + std::to_string(train.epochs), batches,
                          "steps", options.quiet);
        while (progress.cursor.batch < batches) {
            lr = schedule.lr_at(static_cast<double>(epoch) + static_cast<double>(progress.cursor.batch) / batches);
            Batch batch = loader.next();
            ctx.set_step(static_cast<uint64_t>(optimizer->steps()));
            if (hook) hook->before_step(ctx, batch.images, batch.labels, epoch);
            if (skip_nonfinite && store.state_count() > 0) {
                if (!states_before_step.defined()) states_before_step = Tensor(Shape{store.state_floats()}, device);
                states_before_step.copy_from(store.states());
            }
            Tensor& logits = model.forward(ctx, batch.images);
            const float loss = loss_fn.forward(ctx, logits, batch.labels);
            bool finite = std::isfinite(loss);
            int64_t correct = 0;
            if (finite) {
                correct = topk_correct(ctx, logits, batch.labels, 1);
                model.backward(ctx, loss_fn.backward(ctx));
                finite = gradients_finite(ctx, store, grad_partials);
            }
            if (finite) {
                optimizer->step(ctx, store, lr);
                progress.optimizer_steps = optimizer->steps();
                progress.epoch_correct += correct;
                progress.epoch_loss_sum += static_cast<double>(loss) * batch.labels.numel();
                progress.epoch_seen += batch.labels.numel();
                ++run.steps;
            } else {
                std::ostringstream what;
                what << phase << ": " << (std::isfinite(loss) ? "non-finite gradients" : "non-finite loss (" + std::to_string(loss) + ")")
                     << " at step " << optimizer->steps() + 1 << " (epoch " << epoch + 1 << ", batch "
                     << progress.cursor.batch + 1 << " of " << batches << ")";
                if (!skip_nonfinite)
                    fail(what.str() + ": " + describe_nonfinite(model, batch.images, std::isfinite(loss)) + ". Stopped; " +
                             (std::filesystem::exists(checkpoint_path) ? "the last good checkpoint " + checkpoint_path + " is kept"
                                                                       : std::string("no checkpoint was written yet")) +
                             " (" + phase + ".on_nonfinite = \"skip\" skips such steps; a lower " + phase + ".lr may help)",
                         __FILE__, __LINE__);
                ++progress.epoch_skipped;
                if (states_before_step.defined()) store.states().copy_from(states_before_step);
                line.end_line();
                if (!options.quiet) std::printf("%s: skipped\n", what.str().c_str());
            }
            if (hook) hook->after_step(ctx);
            progress.cursor = loader.cursor();
            if (progress.cursor.epoch != epoch) progress.cursor = {epoch, batches};  // keep the epoch open until logged
            if (line.due(progress.cursor.batch)) {
                char detail[128];
                std::snprintf(detail, sizeof detail, "loss %.4f  acc %.2f%%  %.0f img/s",
                              progress.epoch_loss_sum / progress.epoch_seen, 100.0 * progress.epoch_correct / progress.epoch_seen,
                              progress.epoch_seen / std::max(seconds_before + seconds_since(epoch_start), 1e-9));
                line.show(progress.cursor.batch, seconds_before + seconds_since(epoch_start), detail);
            }
            const bool limit = options.stop_after_steps >= 0 && run.steps >= options.stop_after_steps;
            if (g_stop_signal.load() || limit) {
                progress.epoch_seconds = seconds_before + seconds_since(epoch_start);
                save_training_checkpoint(checkpoint_path, model, *optimizer, progress, config, run.data.norm, hook);
                run.save_elapsed();
                line.end_line();
                if (!options.quiet)
                    std::printf("stopped (%s) in %s at epoch %lld, batch %lld; checkpoint written to %s\n",
                                limit ? "step limit" : "signal", phase.c_str(), static_cast<long long>(epoch),
                                static_cast<long long>(progress.cursor.batch), checkpoint_path.c_str());
                stopped = true;
                break;
            }
        }
        if (stopped) break;
        line.end_line();
        SP_REQUIRE(progress.epoch_seen > 0, phase << ": every step of epoch " << epoch + 1 << " was skipped as non-finite ("
                                                  << progress.epoch_skipped << " steps)");
        const double epoch_seconds = seconds_before + seconds_since(epoch_start);
        EvalResult val = evaluate(ctx, model, split.validation, run.data.norm, train.eval_batch_size);
        nlohmann::json record = {
            {"phase", phase},
            {"epoch", epoch + 1},
            {"train_loss", progress.epoch_loss_sum / progress.epoch_seen},
            {"train_top1", 100.0 * progress.epoch_correct / progress.epoch_seen},
            {"val_loss", val.loss},
            {"val_top1", val.top1},
            {"val_top5", val.top5},
            {"lr", lr},
            {"images_per_s", progress.epoch_seen / std::max(epoch_seconds, 1e-9)},
            {"seconds", epoch_seconds},
        };
        if (skip_nonfinite) record["skipped_steps"] = progress.epoch_skipped;
        if (hook) record.update(hook->epoch_log(ctx));
        run.dir->append_metrics(record);
        run.phase_seconds[phase] += epoch_seconds;
        if (!options.quiet)
            std::printf("%s epoch %lld: train loss %.4f top-1 %.2f%% | val loss %.4f top-1 %.2f%% | %.1f s, %.0f img/s\n",
                        phase.c_str(), static_cast<long long>(epoch + 1), record["train_loss"].get<double>(),
                        record["train_top1"].get<double>(), val.loss, val.top1, epoch_seconds,
                        record["images_per_s"].get<double>());
        progress = Progress{{epoch + 1, 0}, progress.optimizer_steps, 0, 0, 0, 0, 0};
        if (epoch + 1 < train.epochs) loader.set_cursor(progress.cursor);
        if ((epoch + 1) % train.checkpoint_every == 0 || epoch + 1 == train.epochs) {
            save_training_checkpoint(checkpoint_path, model, *optimizer, progress, config, run.data.norm, hook);
            run.save_elapsed();
        }
    }
    return !stopped;
}

void save_model(const std::string& path, Model& model, const ExperimentConfig& config, const Normalization& norm,
                const std::map<std::string, const Tensor*>& weight_masks) {
    std::vector<Tensor> views;
    auto named = model_tensors(model, views);
    ModelDescription description = describe_model(model, norm.mean, norm.std);
    // A masked layer's weight is saved as w ⊙ m, beside its mask.
    std::vector<Tensor> masked;  // w ⊙ m, then the masks, on the host
    masked.reserve(2 * weight_masks.size());  // no reallocation: `named` points into it
    for (const auto& [layer, mask] : weight_masks) {
        auto weight = std::find_if(named.begin(), named.end(), [&](const auto& e) { return e.first == layer + ".weight"; });
        SP_REQUIRE(weight != named.end() && weight->second->shape() == mask->shape(),
                   path << ": weight mask of '" << layer << "' has shape " << mask->shape().str()
                        << ", which matches no weight of " << model.name());
        std::vector<float> w = weight->second->to_host(), m = mask->to_host();
        for (size_t i = 0; i < w.size(); ++i) w[i] *= m[i];
        masked.push_back(Tensor::from_host(w, mask->shape(), Device::cpu));
        weight->second = &masked.back();
        masked.push_back(Tensor::from_host(m, mask->shape(), Device::cpu));
        named.emplace_back(layer + ".weight_mask", &masked.back());
        description.weight_masks.push_back(layer);
    }
    save_checkpoint(path, named, model_metadata(model, config, description));
}

void print_result_table(const nlohmann::json& rows) {
    std::printf("\n| experiment | model | stage | params | MACs/image | test top-1 | test top-5 |\n"
                "|---|---|---|---|---|---|---|\n");
    for (const auto& r : rows)
        std::printf("| %s | %s | %s | %lld | %lld | %.2f%% | %.2f%% |\n", r["experiment"].get<std::string>().c_str(),
                    r["model"].get<std::string>().c_str(), r["stage"].get<std::string>().c_str(),
                    static_cast<long long>(r["params"].get<int64_t>()), static_cast<long long>(r["macs"].get<int64_t>()),
                    r["top1"].get<double>(), r["top5"].get<double>());
    std::printf("\n");
}

nlohmann::json train_experiment(const ExperimentConfig& config, const TrainOptions& options) {
    Run run(config, options);
    Model& model = *run.model;
    const bool completed = fit(run, model, config.train, "train");
    nlohmann::json summary = {
        {"experiment", config.name}, {"dataset", config.data.dataset}, {"model", model.name()},
        {"device", run.environment["device_name"]}, {"seed", config.seed}, {"params", model.parameter_count()},
        {"macs", model.macs_per_image()}, {"completed", completed},
    };
    if (!completed) return summary;
    EvalResult result = evaluate(*run.ctx, model, run.data.test, run.data.norm, config.train.eval_batch_size);
    summary["top1"] = result.top1;
    summary["top5"] = result.top5;
    summary["test_loss"] = result.loss;
    summary["time_s"] = run.seconds();
    run.dir->write_json("summary.json", summary);
    save_model(run.dir->file("model.safetensors"), model, config, run.data.norm);
    if (!options.quiet) {
        print_result_table(nlohmann::json::array({{{"experiment", config.name}, {"model", model.name()}, {"stage", "trained"},
                                                   {"params", model.parameter_count()}, {"macs", model.macs_per_image()},
                                                   {"top1", result.top1}, {"top5", result.top5}}}));
        std::printf("%.1f s on %s; run directory: %s\n", run.seconds(), run.environment["device_name"].get<std::string>().c_str(),
                    run.dir->path().c_str());
    }
    return summary;
}

}  // namespace sp
