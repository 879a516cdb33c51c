// Filling a benchmark's K/V pool: every slot of every layer gets the same chunk of random
// values in [-1, 1] (seeded, so runs compare), written through KvPool::WriteKv, so any
// backend's pool fills the same way.
#ifndef KVTIER_TESTS_BENCH_BENCH_KV_FILL_H_
#define KVTIER_TESTS_BENCH_BENCH_KV_FILL_H_

#include "absl/status/status.h"
#include "cache/kv_pool.h"

namespace kvtier {

absl::Status FillWithRandomKv(KvPool& pool);

}  // namespace kvtier

#endif  // KVTIER_TESTS_BENCH_BENCH_KV_FILL_H_
