#include "service/coordinator_metrics.h"

#include <cstdint>
#include <utility>

#include "absl/container/btree_map.h"
#include "kvtier/v1/admin.pb.h"
#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"

namespace kvtier {
namespace {

using Labels = std::vector<prometheus::ClientMetric::Label>;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

void Add(MetricFamily& family, Labels labels, double value) {
  prometheus::ClientMetric& metric = family.metric.emplace_back();
  metric.label = std::move(labels);
  if (family.type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
}

Labels With(Labels labels, std::string name, std::string value) {
  labels.push_back({std::move(name), std::move(value)});
  return labels;
}

void AddTo(v1::CacheCounters& sum, const v1::CacheCounters& counters) {
  sum.set_prompt_tokens(sum.prompt_tokens() + counters.prompt_tokens());
  sum.set_cached_tokens(sum.cached_tokens() + counters.cached_tokens());
  sum.set_sessions_retained(sum.sessions_retained() + counters.sessions_retained());
  sum.set_forks(sum.forks() + counters.forks());
  sum.set_sessions_invalidated(sum.sessions_invalidated() + counters.sessions_invalidated());
}

// The families, in the order they are exported.
struct Families {
  MetricFamily shards = Family("kvtier_shards", "Live shard workers", MetricType::Gauge);
  MetricFamily ready = Family("kvtier_model_ready",
                              "1 when every head range of the model is served", MetricType::Gauge);
  MetricFamily draining =
      Family("kvtier_model_draining", "1 while the model retires by draining", MetricType::Gauge);
  MetricFamily live_shards = Family(
      "kvtier_model_live_shards", "Head ranges of the model with a live shard", MetricType::Gauge);
  MetricFamily sessions =
      Family("kvtier_sessions", "Open sessions, retained ones included", MetricType::Gauge);
  MetricFamily blocks = Family("kvtier_blocks",
                               "K/V blocks by state: used (referenced by sessions), cached "
                               "(unreferenced, matchable), free",
                               MetricType::Gauge);
  MetricFamily lookup_tokens =
      Family("kvtier_prefix_lookup_tokens_total",
             "Prompt tokens looked up in the prefix cache (Extend)", MetricType::Counter);
  MetricFamily hit_tokens =
      Family("kvtier_prefix_hit_tokens_total", "Of the prompt tokens looked up, those found cached",
             MetricType::Counter);
  MetricFamily retained = Family("kvtier_sessions_retained_total",
                                 "Turns ended with a retention (EndTurn)", MetricType::Counter);
  MetricFamily forks =
      Family("kvtier_forks_total", "Sessions forked (ForkSession)", MetricType::Counter);
  MetricFamily sessions_invalidated =
      Family("kvtier_sessions_invalidated_total", "Sessions failed by an invalidation",
             MetricType::Counter);
  MetricFamily blocks_cached =
      Family("kvtier_blocks_cached_total", "Blocks made matchable by prefix", MetricType::Counter);
  MetricFamily evictions = Family("kvtier_evictions_total",
                                  "What was given up, by reason: cached_block_for_room, "
                                  "retained_session_for_room, retention_expired",
                                  MetricType::Counter);
  MetricFamily blocks_invalidated = Family(
      "kvtier_blocks_invalidated_total", "Blocks revoked by an invalidation", MetricType::Counter);
  MetricFamily sessions_lost =
      Family("kvtier_sessions_lost_total", "Sessions dropped with a lost or restarted shard",
             MetricType::Counter);
  MetricFamily invalidations =
      Family("kvtier_invalidations_total",
             "Invalidation calls that succeeded, by scope: session, prefix, tenant, model",
             MetricType::Counter);
  MetricFamily models_retired =
      Family("kvtier_models_retired_total", "Model versions retired", MetricType::Counter);
  MetricFamily shards_dropped = Family(
      "kvtier_shards_dropped_total",
      "Shards dropped for not acknowledging a revocation or a block copy", MetricType::Counter);

  std::vector<MetricFamily> All() && {
    std::vector<MetricFamily> all;
    for (MetricFamily* family :
         {&shards, &ready, &draining, &live_shards, &sessions, &blocks, &lookup_tokens, &hit_tokens,
          &retained, &forks, &sessions_invalidated, &blocks_cached, &evictions, &blocks_invalidated,
          &sessions_lost, &invalidations, &models_retired, &shards_dropped}) {
      all.push_back(std::move(*family));
    }
    return all;
  }
};

}  // namespace

std::vector<MetricFamily> CoordinatorMetrics::Collect() const {
  const v1::GetStatsResponse stats = coordinator_->GetStats();
  Families out;
  Add(out.shards, {}, stats.shards());
  for (const v1::ModelStats& model : stats.models()) {
    const Labels labels = {{"model", model.model().id().name()},
                           {"version", model.model().id().version()}};
    Add(out.ready, labels, model.ready());
    Add(out.draining, labels, model.draining());
    Add(out.live_shards, labels, model.live_shards());
    Add(out.sessions, labels, model.sessions());
    Add(out.blocks, With(labels, "state", "used"), model.blocks_used());
    Add(out.blocks, With(labels, "state", "cached"), model.blocks_cached());
    Add(out.blocks, With(labels, "state", "free"), model.blocks_free());
    const v1::CacheCounters& cache = model.cache();
    Add(out.blocks_cached, labels, cache.blocks_cached());
    Add(out.evictions, With(labels, "reason", "cached_block_for_room"), cache.blocks_evicted());
    Add(out.evictions, With(labels, "reason", "retained_session_for_room"),
        cache.sessions_evicted());
    Add(out.evictions, With(labels, "reason", "retention_expired"), cache.sessions_expired());
    Add(out.blocks_invalidated, labels, cache.blocks_invalidated());
    Add(out.sessions_lost, labels, model.sessions_lost());

    absl::btree_map<std::string, v1::CacheCounters> by_tenant;
    for (const v1::TenantStats& tenant : model.tenants()) {
      AddTo(by_tenant[tenants_.contains(tenant.tenant()) ? tenant.tenant() : "other"],
            tenant.cache());
    }
    for (const auto& [tenant, counters] : by_tenant) {
      const Labels tenant_labels = With(labels, "tenant", tenant);
      Add(out.lookup_tokens, tenant_labels, counters.prompt_tokens());
      Add(out.hit_tokens, tenant_labels, counters.cached_tokens());
      Add(out.retained, tenant_labels, counters.sessions_retained());
      Add(out.forks, tenant_labels, counters.forks());
      Add(out.sessions_invalidated, tenant_labels, counters.sessions_invalidated());
    }
  }
  const v1::TierCounters& tier = stats.tier();
  for (const auto& [scope, count] :
       {std::pair<const char*, int64_t>{"session", tier.session_invalidations()},
        {"prefix", tier.prefix_invalidations()},
        {"tenant", tier.tenant_invalidations()},
        {"model", tier.model_invalidations()}}) {
    Add(out.invalidations, {{"scope", scope}}, count);
  }
  Add(out.models_retired, {}, tier.models_retired());
  Add(out.shards_dropped, {}, tier.shards_dropped());
  return std::move(out).All();
}

}  // namespace kvtier
