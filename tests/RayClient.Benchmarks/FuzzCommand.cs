using System.Globalization;
using RayClient.Tests.Serialization;

namespace RayClient.Benchmarks;

/// <summary>
/// <c>--fuzz [iterations] [seed]</c>: a long pickle fuzzing run (the suite runs 3,000 mutations
/// with a fixed seed). Prints progress every 100,000 mutations and every finding with the seed,
/// so it can be replayed; exits 1 when anything other than success or a
/// RaySerializationException happened, or an input took longer than 2 s.
/// </summary>
internal static class FuzzCommand
{
    public static int Run(string[] args)
    {
        var numbers = args.Where(a => !a.StartsWith("--", StringComparison.Ordinal)).Select(a => long.Parse(a, CultureInfo.InvariantCulture)).ToList();
        var iterations = numbers.Count > 0 ? numbers[0] : 1_000_000;
        var seed = numbers.Count > 1 ? (int)numbers[1] : Random.Shared.Next();
        const int Batch = 100_000;
        var findings = 0;
        var decoded = 0L;
        var refused = 0L;
        var slowest = TimeSpan.Zero;
        var started = DateTime.UtcNow;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Fuzzing the pickle codec: {iterations:N0} mutations, seed {seed}"));
        for (long done = 0, batch = 0; done < iterations; batch++)
        {
            // One fuzzer per batch, seeded from the run's seed and the batch number: any batch replays alone.
            var fuzzer = new PickleFuzzer(HashCode.Combine(seed, batch));
            var count = (int)Math.Min(Batch, iterations - done);
            var report = fuzzer.Run(count);
            done += count;
            decoded += report.Decoded;
            refused += report.Refused;
            slowest = report.Slowest > slowest ? report.Slowest : slowest;
            foreach (var finding in report.Findings)
            {
                findings++;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"FINDING (seed {seed}, batch {batch}): {finding}"));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{done:N0} mutations in {(DateTime.UtcNow - started).TotalSeconds:0} s: {decoded:N0} decoded, {refused:N0} refused, {findings} findings, slowest input {slowest.TotalMilliseconds:0} ms"));
        }

        return findings == 0 ? 0 : 1;
    }
}
