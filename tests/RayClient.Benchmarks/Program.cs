using System.Diagnostics;
using System.Globalization;
using Ray.Rpc;
using RayClient;
using RayClient.Server;
using RayClient.Server.Testing;

namespace RayClient.Benchmarks;

/// <summary>
/// Measuring harness: client and embedded server in one process, real gRPC on loopback, real
/// python3 workers. Every figure is quoted with its ratio to a raw unary gRPC round trip on the
/// same channel, measured in the same run, because machines here are noisy.
/// Usage: dotnet run -c Release --project tests/RayClient.Benchmarks [-- --quick]
/// Pickle fuzzing, the long run of the suite's bounded test:
/// dotnet run -c Release --project tests/RayClient.Benchmarks -- --fuzz [iterations, default 1000000] [seed, default random]
/// </summary>
internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        if (args.Contains("--fuzz"))
        {
            return FuzzCommand.Run(args);
        }

        var quick = args.Contains("--quick");
        var workingDir = Path.Combine(Path.GetTempPath(), "rayclient-bench", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(workingDir);
        await File.WriteAllTextAsync(Path.Combine(workingDir, "bench.py"), "def noop():\n    return None\n\ndef echo(x):\n    return x\n");
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = Environment.ProcessorCount });
        await using var ray = await RaySession.ConnectAsync(new RaySessionOptions
        {
            Address = server.Address,
            RuntimeEnv = new RuntimeEnv { WorkingDir = workingDir },
            LogSink = _ => { },
        });
        var noop = PyFunction.Of("bench", "noop");
        var rows = new List<(string Name, double Value, string Unit, double? Ratio)>();

        // Warm up: workers started, JIT done, function payload put.
        for (var i = 0; i < 200; i++)
        {
            await ray.Call(noop);
        }

        await ray.GetAsync(Enumerable.Range(0, 1000).Select(_ => ray.Call(noop)).ToList());

        // Baseline: a raw unary gRPC call (ClusterInfo PING) on the same channel.
        // Every measure runs once untimed first, so the JIT has tiered up the path it measures.
        var pings = quick ? 1000 : 3000;
        Func<Task> ping = async () =>
            await ray.Connection.Driver.ClusterInfoAsync(new ClusterInfoRequest { Type = ClusterInfoType.Types.TypeEnum.Ping }, ray.Connection.UnaryOptions(CancellationToken.None)).ResponseAsync;
        await TimeEachAsync(pings, ping);
        var baseline = Median(await TimeEachAsync(pings, ping));
        rows.Add(("raw gRPC unary round trip (baseline)", baseline * 1e6, "µs", 1));

        // Synchronous no-op task round trip: submit, get, repeat.
        var syncRuns = quick ? 1000 : 3000;
        await TimeEachAsync(syncRuns, async () => await ray.Call(noop));
        var roundTrip = Median(await TimeEachAsync(syncRuns, async () => await ray.Call(noop)));
        rows.Add(("no-op task round trip (submit + get)", roundTrip * 1e6, "µs", roundTrip / baseline));
        rows.Add(("synchronous round trips per second", 1 / roundTrip, "/s", null));

        // Pipelined batches of 1,000 no-op tasks.
        var batches = quick ? 5 : 10;
                var all = new List<double>();
        for (var b = -2; b < batches; b++)
        {
            var sw = Stopwatch.StartNew();
            var refs = new List<ObjectRef<object?>>(1000);
            for (var i = 0; i < 1000; i++)
            {
                refs.Add(ray.Call(noop));
            }

            await ray.GetAsync(refs);
            sw.Stop();
            if (b < 0)
            {
                continue; // warm-up batches
            }

            all.Add(sw.Elapsed.TotalSeconds);
            
        }

        var batchMedian = Median(all);
        rows.Add(("1,000 pipelined no-op tasks (median batch)", 1000 / batchMedian, "tasks/s", batchMedian / 1000 / baseline));

        foreach (var size in new[] { 1 << 20, 100 << 20 })
        {
            var payload = new byte[size];
            Random.Shared.NextBytes(payload);
            var repeats = size > (1 << 20) ? (quick ? 3 : 8) : (quick ? 50 : 200);
            var putTimes = new List<double>();
            var getTimes = new List<double>();
            for (var r = -2; r < repeats; r++)
            {
                var sw = Stopwatch.StartNew();
                var reference = await ray.PutAsync(payload);
                var put = sw.Elapsed.TotalSeconds;
                sw.Restart();
                var back = await reference.GetAsync();
                if (r >= 0)
                {
                    putTimes.Add(put);
                    getTimes.Add(sw.Elapsed.TotalSeconds);
                }

                if (back.Length != payload.Length)
                {
                    throw new InvalidOperationException("size mismatch");
                }

                await reference.DisposeAsync(); // freed now, so the server's buffers are reused
            }

            var label = size >= 1 << 20 && size < 2 << 20 ? "1 MiB" : "100 MiB";
            var putMedian = Median(putTimes);
            var getMedian = Median(getTimes);
            rows.Add(($"put {label}", size / putMedian / 1e9, "GB/s", putMedian / baseline));
            rows.Add(($"get {label}", size / getMedian / 1e9, "GB/s", getMedian / baseline));
        }

        await MeasureReconnectsAsync(server, workingDir, quick, rows, baseline);
        await JobsBenchmark.MeasureAsync(server, quick, rows, baseline);

        Console.WriteLine();
        Console.WriteLine($"RayClient benchmarks — {Environment.ProcessorCount} cores, .NET {Environment.Version}, embedded server, {DateTime.UtcNow:u}");
        Console.WriteLine($"{"measure",-46} {"value",14} {"unit",-8} {"× baseline RTT",16}");
        Console.WriteLine(new string('-', 88));
        foreach (var (name, value, unit, ratio) in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{name,-46} {value,14:N2} {unit,-8} {(ratio is { } x ? x.ToString("N2", CultureInfo.InvariantCulture) : "-"),16}"));
        }

        Console.WriteLine();
        Console.WriteLine("Ratios: time of one operation divided by the median raw gRPC round trip of the same run.");
        Directory.Delete(workingDir, recursive: true);
        return 0;
    }

    /// <summary>Issue 4's measures: time from a cut to resumed traffic, and task throughput under cuts every 200 ms.</summary>
    private static async Task MeasureReconnectsAsync(
        LocalRayServer server, string workingDir, bool quick, List<(string Name, double Value, string Unit, double? Ratio)> rows, double baseline)
    {
        await using var proxy = new FaultProxy(server.Port);
        await using var ray = await RaySession.ConnectAsync(new RaySessionOptions
        {
            Address = proxy.Address,
            RuntimeEnv = new RuntimeEnv { WorkingDir = workingDir },
            LogSink = _ => { },
        });
        var noop = PyFunction.Of("bench", "noop");
        for (var i = 0; i < 500; i++)
        {
            await ray.Call(noop);
        }

        var outages = new List<double>();
        for (var cut = 0; cut < 20; cut++)
        {
            proxy.CutAll();
            var start = Stopwatch.GetTimestamp();
            await ray.Call(noop); // the first round trip after the cut
            outages.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
        }

        var median = Median([.. outages]);
        rows.Add(("cut → resumed traffic, median of 20", median * 1e3, "ms", median / baseline));
        rows.Add(("cut → resumed traffic, worst of 20", outages.Max() * 1e3, "ms", outages.Max() / baseline));

        var seconds = quick ? 3 : 6;
        var calm = await TasksPerSecondAsync(ray, noop, seconds, cut: null);
        var stormy = await TasksPerSecondAsync(ray, noop, seconds, cut: proxy);
        rows.Add(("tasks/s through the proxy, no cuts", calm, "tasks/s", null));
        rows.Add(("tasks/s through the proxy, a cut every 200 ms", stormy, "tasks/s", null));
        rows.Add(("  ratio with cuts / without", stormy / calm, "×", null));
    }

    private static async Task<double> TasksPerSecondAsync(RaySession ray, PyFunction<object?> noop, int seconds, FaultProxy? cut)
    {
        using var stop = new CancellationTokenSource();
        var cutter = cut is null ? Task.CompletedTask : Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(200, CancellationToken.None);
                cut.CutAll();
            }
        });
        var sw = Stopwatch.StartNew();
        long done = 0;
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            var refs = new List<ObjectRef<object?>>(1000);
            for (var i = 0; i < 1000; i++)
            {
                refs.Add(ray.Call(noop));
            }

            await ray.GetAsync(refs);
            done += 1000;
        }

        var rate = done / sw.Elapsed.TotalSeconds;
        await stop.CancelAsync();
        await cutter;
        return rate;
    }

    private static async Task<List<double>> TimeEachAsync(int count, Func<Task> action)
    {
        var times = new List<double>(count);
        for (var i = 0; i < count; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await action();
            times.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
        }

        return times;
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }
}
