namespace RayClient.Tests.Serialization;

/// <summary>
/// Bounded mutation fuzzing of the codec in every run (fixed seed, so a finding reproduces);
/// the long run is <c>dotnet run -c Release --project tests/RayClient.Benchmarks -- --fuzz</c>.
/// </summary>
public sealed class PickleFuzzTests
{
    [Fact]
    public async Task Read_MutatedGoldenPickles_OnlySucceedOrThrowRaySerializationException()
    {
        var fuzzer = new PickleFuzzer(seed: 20261205);

        // Run off the test thread so a hang fails the test instead of stalling the suite.
        var run = Task.Run(() => fuzzer.Run(iterations: 3000));
        var finished = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(60)));

        Assert.True(finished == run, "the fuzz run did not finish within 60 s (a hang)");
        var report = await run;
        Assert.True(report.Findings.Count == 0, string.Join(Environment.NewLine, report.Findings.Take(5)));
        Assert.Equal(3000, report.Iterations);
        Assert.True(report.Decoded > 100 && report.Refused > 100, $"mutations should both decode and fail: {report.Decoded} decoded, {report.Refused} refused");
    }
}
