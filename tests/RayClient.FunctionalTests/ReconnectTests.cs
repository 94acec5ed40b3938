using System.Security.Cryptography;
using RayClient.FunctionalTests.Infrastructure;
using RayClient.Server;
using RayClient.Server.Testing;
using Xunit.Abstractions;

namespace RayClient.FunctionalTests;

/// <summary>
/// Reconnect behaviour with real faults: a TCP proxy between client and server cuts, black-holes
/// and refuses connections (spec §4; Ray's test_client_reconnect.py).
/// </summary>
public sealed class ReconnectTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly PyFunction<long> Add = PyFunction.Of<long>("tasks", "add");
    private readonly LogRecorder _log = new();
    private LocalRayServer _server = null!;
    private FaultProxy _proxy = null!;
    private string _workingDir = null!;

    public async Task InitializeAsync()
    {
        _workingDir = Path.Combine(Path.GetTempPath(), "rayclient-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_workingDir);
        await File.WriteAllTextAsync(Path.Combine(_workingDir, "tasks.py"), ServerFixture.TasksModule);
        _server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 2, LoggerFactory = _log.Factory });
        _proxy = new FaultProxy(_server.Port);
    }

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        await _server.DisposeAsync();
        Directory.Delete(_workingDir, recursive: true);
        output.WriteLine(_log.Dump()); // shown by the test runner when the test failed
        _log.Factory.Dispose();
    }

    private Task<RaySession> ConnectAsync(Action<RaySessionOptions>? configure = null)
    {
        var options = new RaySessionOptions
        {
            Address = _proxy.Address,
            RuntimeEnv = new RuntimeEnv { WorkingDir = _workingDir },
            KeepAlivePingDelay = TimeSpan.FromSeconds(1),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(1),
            LoggerFactory = _log.Factory,
        };
        configure?.Invoke(options);
        return RaySession.ConnectAsync(options);
    }

    [Fact]
    public async Task CutsEvery200Ms_ManyTasksAndPuts_AllCorrectAndEachTaskRanOnce()
    {
        await using var ray = await ConnectAsync();
        await ray.Call(Add, 0, 0); // worker and function ready before counting
        var executionsBefore = _server.TaskExecutions;
        using var stopCutting = new CancellationTokenSource();
        var cuts = 0;
        var cutter = Task.Run(async () =>
        {
            // The fault schedule itself: a cut every 200 ms while the callers work.
            while (!stopCutting.IsCancellationRequested)
            {
                await Task.Delay(200, CancellationToken.None);
                if (_proxy.CutAll() > 0)
                {
                    Interlocked.Increment(ref cuts);
                }
            }
        });

        var callers = Enumerable.Range(0, 4).Select(caller => Task.Run(async () =>
        {
            for (var batch = 0; batch < 25; batch++)
            {
                var refs = Enumerable.Range(0, 50).Select(i => ray.Call(Add, (caller * 100_000) + (batch * 50) + i, 1)).ToList();
                var results = await ray.GetAsync(refs);
                for (var i = 0; i < results.Count; i++)
                {
                    Assert.Equal((caller * 100_000) + (batch * 50) + i + 1, results[i]);
                }
            }

            for (var p = 0; p < 125; p++)
            {
                var payload = RandomNumberGenerator.GetBytes(1024 * 1024);
                var reference = await ray.PutAsync(payload);
                Assert.Equal(payload, await reference.GetAsync());
            }
        })).ToList();

        await Task.WhenAll(callers);
        await stopCutting.CancelAsync();
        await cutter;

        Assert.Equal(5000, _server.TaskExecutions - executionsBefore);
        Assert.True(cuts > 3, $"only {cuts} cuts happened while the callers ran");
        Assert.True(ray.Connection.Reconnects > 0);
        using var settle = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (ray.ConnectionState.Status != RayConnectionStatus.Connected)
        {
            await ray.WaitForStateChangedAsync(ray.ConnectionState.Status, settle.Token); // the last cut may still be healing
        }

        Assert.Equal(3L, await ray.Call(Add, 1, 2));
    }

    [Fact]
    public async Task BlackHoleShorterThanGrace_SessionResumesByItself()
    {
        await using var ray = await ConnectAsync();
        await ray.Call(Add, 0, 0);
        var reconnecting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var reconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = ray.ConnectionStates.Subscribe(state =>
        {
            if (state.Status == RayConnectionStatus.Reconnecting)
            {
                reconnecting.TrySetResult();
            }
            else if (state.Status == RayConnectionStatus.Reconnected)
            {
                reconnected.TrySetResult();
            }
        });

        _proxy.BlackHole();
        var during = ray.Call(PyFunction.Of<long>("tasks", "sleep_then"), 0.1, 5);
        await reconnecting.Task.WaitAsync(TimeSpan.FromSeconds(30)); // keepalive noticed the dead link
        _proxy.Resume();

        Assert.Equal(5, await during.GetAsync(TimeSpan.FromSeconds(60)));
        await reconnected.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(3L, await ray.Call(Add, 1, 2));
    }

    [Fact]
    public async Task OutageLongerThanGrace_PendingWorkFailsPromptly_AndANewSessionWorks()
    {
        var ray = await ConnectAsync(o => o.ReconnectGracePeriod = TimeSpan.FromSeconds(2));
        var kept = await ray.PutAsync(42L);
        var pending = ray.Call(PyFunction.Of<long>("tasks", "sleep_then"), 30, 1);
        await pending.GetIdAsync();

        _proxy.RefuseNewConnections = true;
        _proxy.CutAll();

        var lost = await Assert.ThrowsAsync<RaySessionLostException>(() => pending.GetAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("grace period of 2 s", lost.Message);
        Assert.Equal(RayConnectionStatus.Lost, ray.ConnectionState.Status);
        await Assert.ThrowsAsync<RaySessionLostException>(() => kept.GetAsync());
        await Assert.ThrowsAsync<RaySessionLostException>(() => ray.PutAsync(1L));
        Assert.Throws<RaySessionLostException>(() => ray.Call(Add, 1, 2));
        await Eventually.TrueAsync(() => _server.State.Sessions.All(s => s.ClientId != ray.ClientId), "the server cleaned the session up after its grace period");
        await ray.DisposeAsync();

        _proxy.RefuseNewConnections = false;
        await using var fresh = await ConnectAsync();
        Assert.Equal(3L, await fresh.Call(Add, 1, 2));
    }

    [Fact]
    public async Task ServerRestarted_ClientReportsTheSessionIsUnknown()
    {
        await using var ray = await ConnectAsync();
        var reference = await ray.PutAsync(7L);
        await using var replacement = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1 });

        _proxy.TargetPort = replacement.Port; // the "restarted" server has none of our state
        _proxy.CutAll();

        var lost = await Assert.ThrowsAsync<RaySessionLostException>(() => reference.GetAsync().WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("no longer knows this session", lost.Message);
    }

    [Fact]
    public async Task DroppedResponses_AreReplayedAndAnsweredFromTheCache()
    {
        await using var ray = await ConnectAsync();
        await ray.Call(Add, 0, 0);
        var before = _server.TaskExecutions;
        var dropped = 0;
        _server.Faults.DropResponse = response =>
        {
            // Every 7th task ticket is lost after the task was accepted, and the stream is cut.
            if (response.TypeCase == RayClient.Server.Protocol.DataResponse.TypeOneofCase.TaskTicket && Interlocked.Increment(ref dropped) % 7 == 0)
            {
                _proxy.CutAll();
                return true;
            }

            return false;
        };

        var results = new List<long>();
        for (var i = 0; i < 100; i++)
        {
            results.Add(await ray.Call(Add, i, 1));
        }

        _server.Faults.DropResponse = null;
        Assert.Equal(Enumerable.Range(1, 100).Select(i => (long)i), results);
        Assert.Equal(100, _server.TaskExecutions - before);
    }

}

/// <summary>Tests that change process-wide environment variables run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EnvironmentCollection
{
    public const string Name = "process environment";
}

[Collection(EnvironmentCollection.Name)]
public sealed class GracePeriodSettingTests
{
    private static TimeSpan Grace(RaySessionOptions options)
    {
        options.Address = "ray://127.0.0.1:1";
        return RayClient.Session.ConnectionSettings.Resolve(options).GracePeriod;
    }

    [Fact]
    public void GracePeriod_EnvironmentVariableAndOption_BothSetIt()
    {
        var saved = Environment.GetEnvironmentVariable("RAY_CLIENT_RECONNECT_GRACE_PERIOD");
        try
        {
            Environment.SetEnvironmentVariable("RAY_CLIENT_RECONNECT_GRACE_PERIOD", "7");
            Assert.Equal(TimeSpan.FromSeconds(7), Grace(new RaySessionOptions()));
            Assert.Equal(TimeSpan.FromSeconds(3), Grace(new RaySessionOptions { ReconnectGracePeriod = TimeSpan.FromSeconds(3) }));
            Assert.Equal(TimeSpan.FromSeconds(7), new LocalRayServerOptions().ResolveDefaultGrace());

            Environment.SetEnvironmentVariable("RAY_CLIENT_RECONNECT_GRACE_PERIOD", "soon");
            Assert.Throws<ArgumentException>(() => Grace(new RaySessionOptions()));

            Environment.SetEnvironmentVariable("RAY_CLIENT_RECONNECT_GRACE_PERIOD", null);
            Assert.Equal(TimeSpan.FromSeconds(30), Grace(new RaySessionOptions()));
            Assert.Equal(TimeSpan.FromSeconds(5), new LocalRayServerOptions { ReconnectGracePeriod = TimeSpan.FromSeconds(5) }.ResolveDefaultGrace());
        }
        finally
        {
            Environment.SetEnvironmentVariable("RAY_CLIENT_RECONNECT_GRACE_PERIOD", saved);
        }
    }

    [Fact]
    public async Task GracePeriod_FromTheEnvironment_ReachesTheServer()
    {
        var saved = Environment.GetEnvironmentVariable("RAY_CLIENT_RECONNECT_GRACE_PERIOD");
        await using var server = await LocalRayServer.StartAsync(new LocalRayServerOptions { NumCpus = 1 });
        await using var proxy = new FaultProxy(server.Port);
        try
        {
            Environment.SetEnvironmentVariable("RAY_CLIENT_RECONNECT_GRACE_PERIOD", "1");
            await using var ray = await RaySession.ConnectAsync(proxy.Address);
            Assert.Equal(TimeSpan.FromSeconds(1), ray.ReconnectGracePeriod);
            Assert.Equal(1, server.State.Sessions.Single().GraceSeconds);

            proxy.RefuseNewConnections = true;
            proxy.CutAll();

            await Eventually.TrueAsync(() => server.SessionCount == 0, "the server dropped the session after the 1 s grace period", TimeSpan.FromSeconds(20));
        }
        finally
        {
            Environment.SetEnvironmentVariable("RAY_CLIENT_RECONNECT_GRACE_PERIOD", saved);
        }
    }
}
