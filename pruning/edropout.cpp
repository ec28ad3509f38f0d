// The EDropout search loop around the evolution engine and the population evaluator.
#include "pruning/edropout.h"

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "kernels/error.h"
#include "kernels/nvtx.h"
#include "pruning/accounting.h"

namespace sp {

namespace {
constexpr uint64_t kPurposeEvolution = 0x6564'726f'7064'6576ull;  // "edropdev"
}  // namespace

const SettingTable<EDropoutOptions>& edropout_settings() {
    using O = EDropoutOptions;
    static const SettingTable<O> table =
        SettingTable<O>()
            .integer("members", [](O& o) -> int64_t& { return o.evolution.members; }, 4, 4096, "population size P")
            .number("mutation_rate", [](O& o) -> double& { return o.evolution.mutation_rate; }, 0.0, 1.0,
                    "probability of differential evolution's per-unit flag F")
            .number("crossover", [](O& o) -> double& { return o.evolution.crossover; }, 0.0, 1.0, "crossover probability CR")
            .choice("rule", [](O& o) -> MutationRule& { return o.evolution.rule; },
                    std::vector<std::pair<const char*, MutationRule>>{{"reference", MutationRule::reference},
                                                                      {"textbook", MutationRule::textbook}},
                    "binary mutation rule: the authors' code (reference) or textbook binary DE")
            .custom_choice(
                "energy", {"margin", "cross-entropy", "error", "ising"},
                [](const O& o) { return std::string(o.ising ? "ising" : energy_name(o.evaluation.energy)); },
                [](O& o, const std::string& v) {
                    o.ising = v == "ising";
                    if (!o.ising) o.evaluation.energy = energy_from_name(v);
                },
                "energy of a state: of the batch's logits (margin, cross-entropy, error) or the Ising energy of the state alone")
            .number("ising_keep_target", [](O& o) -> double& { return o.ising_options.keep_target; }, 0.0, 1.0,
                    "ising: the kept fraction of units below which the penalty applies")
            .number("ising_penalty", [](O& o) -> double& { return o.ising_options.penalty; }, 0.0, 1e9, "ising: the penalty's weight")
            .number("budget_weight", &O::budget_weight, 0.0, 1e9,
                    "lambda of the budget term lambda * max(kept - prune.keep, 0) in prune.budget units (0: none)")
            .boolean("member_batch_statistics", [](O& o) -> bool& { return o.evaluation.member_batch_statistics; },
                     "BN with each member's batch statistics while evaluating (else running statistics)")
            .boolean("compact_members", [](O& o) -> bool& { return o.evaluation.compact_members; },
                     "energies from each member's compacted network, one after another (fewer MACs: for the CPU), "
                     "instead of one gated pass of all members")
            .integer("min_epochs", &O::min_epochs, -1, 100000, "the search may stop from this epoch (-1: half of train.epochs)")
            .integer("patience", &O::patience, 1, INT64_MAX, "generations without a change of the best energy before it stops")
            .integer("min_generations", &O::min_generations, 0, INT64_MAX, "and at least this many generations in all")
            .integer("eval_images", &O::eval_images, 0, INT64_MAX,
                     "images of each batch the energies use (0: the whole batch; at most train.batch_size)");
    return table;
}

EDropoutSearch::EDropoutSearch(MaskSpace& space, EDropoutOptions options, Context& ctx)
    : space_(space),
      options_(options),
      evolution_(ctx.device(), space.size(), options.evolution,
                 [&] {
                     std::vector<UnitSegment> segments;
                     for (const MaskSegment& s : space.segments()) segments.push_back({s.offset, s.size, s.min_kept});
                     return segments;
                 }()),
      evaluator_(space,
                 [&] {
                     PopulationOptions o = options.evaluation;
                     o.check_members = false;  // the evolution repairs every member
                     return o;
                 }()),
      seed_(ctx.seed()) {
    edropout_settings().check(options, "edropout");
    SP_REQUIRE(space.granularity() == Granularity::filter,
               "edropout: searches filter/neuron units (granularity = \"filter\"), got " << granularity_name(space.granularity()));
    const int64_t p = options.evolution.members, d = space.size();
    trials_ = Tensor(Shape{p, d}, ctx.device());
    members_ = Tensor(Shape{p, d}, ctx.device());
    energies_ = Tensor(Shape{p}, ctx.device());
    best_ = Tensor(Shape{d}, ctx.device());
    best_.fill(1.0f);
    if (options.ising) ising_ = std::make_unique<IsingEnergy>(space, options.ising_options);
    if (options.budget_weight > 0) budget_ = std::make_unique<BudgetEnergy>(ctx, space, options.budget, options.budget_weight);
}

void EDropoutSearch::evaluate(Context& ctx, const Tensor& population, const Tensor& images, const Tensor& labels) {
    if (ising_) ising_->evaluate(ctx, population, energies_);
    else evaluator_.evaluate(ctx, population, images, labels, energies_);
    if (budget_) budget_->add_to(ctx, population, energies_);
}

void EDropoutSearch::before_step(Context& ctx, const Tensor& batch_images, const Tensor& batch_labels, int64_t epoch) {
    const auto start = std::chrono::steady_clock::now();
    if (!converged_) {
        NvtxRange range("edropout.generation");
        // The energies' images: the batch, or its first eval_images rows (views, no copy).
        const int64_t b = options_.eval_images > 0 ? std::min(options_.eval_images, batch_images.dim(0)) : batch_images.dim(0);
        const Shape& in = batch_images.shape();
        Tensor images = Tensor::view(const_cast<float*>(batch_images.data()), Shape{b, in[1], in[2], in[3]}, batch_images.device());
        Tensor labels = Tensor::view(const_cast<float*>(batch_labels.data()), Shape{b}, batch_labels.device());
        if (ising_ && coupling_epoch_ != epoch) {
            ising_->update_couplings(ctx, images);  // on the dense network (detaches the mask)
            coupling_epoch_ = epoch;
        }
        if (!initialised_) {
            evolution_.initialise(ctx, random_stream_key(seed_, kPurposeEvolution, 0));
            evolution_.unpack_members(ctx, members_);
            evaluate(ctx, members_, images, labels);
            evolution_.set_energies(ctx, energies_);
            initialised_ = true;
        } else {
            evolution_.make_trials(ctx, random_stream_key(seed_, kPurposeEvolution, static_cast<uint64_t>(generations_) + 1));
            evolution_.unpack_trials(ctx, trials_);
            evaluate(ctx, trials_, images, labels);
            evolution_.select(ctx, energies_);
        }
        ++generations_;
        ++epoch_generations_;
        evolution_.best_state(ctx, best_);
        // The convergence rule needs the best energy: one scalar per generation.
        const EvolutionStats s = evolution_.stats(ctx);
        accepted_sum_ += s.acceptance;
        unchanged_ = s.best_energy == last_best_ && generations_ > 1 ? unchanged_ + 1 : 0;
        last_best_ = s.best_energy;
        if (epoch >= options_.min_epochs && generations_ >= options_.min_generations && unchanged_ >= options_.patience)
            converged_ = true;
    }
    space_.attach(ctx, best_);
    search_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

nlohmann::json EDropoutSearch::epoch_log(Context& ctx) {
    nlohmann::json log = {{"generations", generations_}, {"search_converged", converged_}};
    if (initialised_) {
        const EvolutionStats s = evolution_.stats(ctx);
        const ModelAccount a = account(space_, best_state_host());
        log.update({{"best_energy", s.best_energy}, {"mean_energy", s.mean_energy}, {"diversity", s.mean_hamming},
                    {"acceptance", epoch_generations_ ? accepted_sum_ / epoch_generations_ : 0.0},
                    {"kept_units", s.kept_fraction}, {"params_kept", a.params_kept()}, {"macs_kept", a.macs_kept()}});
    }
    accepted_sum_ = 0;
    epoch_generations_ = 0;
    return log;
}

void EDropoutSearch::save(std::vector<std::pair<std::string, Tensor>>& tensors, std::map<std::string, std::string>& meta) const {
    const int64_t p = evolution_.members(), d = space_.size();
    tensors.emplace_back("edropout.members", Tensor::from_host(evolution_.members_host(), Shape{p, d}, Device::cpu));
    tensors.emplace_back("edropout.energies", Tensor::from_host(evolution_.energies_host(), Shape{p}, Device::cpu));
    tensors.emplace_back("edropout.best", best_.to(Device::cpu));
    meta["edropout.initialised"] = initialised_ ? "1" : "0";
    meta["edropout.converged"] = converged_ ? "1" : "0";
    meta["edropout.generations"] = std::to_string(generations_);
    meta["edropout.unchanged"] = std::to_string(unchanged_);
    meta["edropout.last_best"] = nlohmann::json(last_best_).dump();
    meta["edropout.search_seconds"] = nlohmann::json(search_seconds_).dump();  // a resumed run counts on
    if (ising_ && ising_->ready()) {
        tensors.emplace_back("edropout.ising_couplings", ising_->couplings().to(Device::cpu));
        meta["edropout.coupling_epoch"] = std::to_string(coupling_epoch_);
    }
}

void EDropoutSearch::restore(Context& ctx, const Checkpoint& ck) {
    const int64_t p = evolution_.members(), d = space_.size();
    initialised_ = ck.meta("edropout.initialised") == "1";
    converged_ = ck.meta("edropout.converged") == "1";
    generations_ = std::stoll(ck.meta("edropout.generations"));
    unchanged_ = std::stoll(ck.meta("edropout.unchanged"));
    last_best_ = nlohmann::json::parse(ck.meta("edropout.last_best")).get<float>();
    if (ck.metadata.count("edropout.search_seconds"))  // absent in checkpoints of earlier versions
        search_seconds_ = nlohmann::json::parse(ck.meta("edropout.search_seconds")).get<double>();
    if (initialised_)
        evolution_.restore(ctx, ck.get("edropout.members", Shape{p, d}).values, ck.get("edropout.energies", Shape{p}).values);
    best_.copy_from(Tensor::from_host(ck.get("edropout.best", Shape{d}).values, Shape{d}, Device::cpu));
    if (ising_ && ck.tensors.count("edropout.ising_couplings")) {
        ising_->set_couplings(ctx, ck.get("edropout.ising_couplings", Shape{d, d}).values);
        coupling_epoch_ = std::stoll(ck.meta("edropout.coupling_epoch"));
    }
}

}  // namespace sp
