// Bee-Queue no-op worker: `node beequeue_bench.js REDIS_URL N CONCURRENCY`.
// Enqueues N jobs first (saveAll, not timed), then processes them with a handler that
// does nothing, timing from the first job handled to the N-th; prints one JSON line.
const Queue = require('bee-queue');

async function main() {
  const [url, total, concurrency] = [process.argv[2], +process.argv[3], +process.argv[4]];
  const queue = new Queue(`bench-${process.pid}-${concurrency}`, {
    redis: { url },
    isWorker: true,
    removeOnSuccess: true,
    storeJobs: false,
    sendEvents: false,
    getEvents: false,
    activateDelayedJobs: false,
  });
  await queue.ready();
  for (let start = 0; start < total; start += 1000) {
    const jobs = [];
    for (let i = start; i < Math.min(total, start + 1000); i += 1) jobs.push(queue.createJob({ i }));
    await queue.saveAll(jobs);
  }
  let first = null;
  let count = 0;
  queue.process(concurrency, async () => {
    const now = process.hrtime.bigint();
    if (first === null) first = now;
    count += 1;
    if (count === total) {
      const seconds = Number(now - first) / 1e9;
      console.log(JSON.stringify({ seconds, rate: (total - 1) / seconds, jobs: total }));
      process.exit(0);
    }
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
