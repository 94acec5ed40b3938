using System.Net.Sockets;
using Grpc.Core;
using Ray.Rpc;
using RayClient.Session;
using RayClient.Tests.Session.Infrastructure;

namespace RayClient.Tests.Session;

/// <summary>
/// How long connecting keeps trying (issue 10 §5; Ray's <c>worker.py :: _connect_channel</c>:
/// 3 attempts of 5, 10 and 15 s by default), on virtual time.
/// </summary>
public sealed class ConnectPatienceTests
{
    [Fact]
    public async Task WaitUntilReachable_ServerRefusesForItsFirst2s_DefaultOptionsKeepTryingAndConnect()
    {
        var clock = new VirtualClock();
        var server = new InMemoryRayServer();
        server.Ping = _ => clock.Elapsed < TimeSpan.FromSeconds(2) ? Refused() : Task.FromResult(new ClusterInfoResponse { Json = "{}" });
        await using var connection = new RayConnection(RayConnectionFaultTests.Settings(clock, TimeSpan.FromSeconds(30)), server, channel: null);

        var reaching = connection.WaitUntilReachableAsync(CancellationToken.None);
        await DriveAsync(clock, reaching);

        await reaching; // gave up after 1.5 s before: 3 PINGs, 0.5 s and 1 s apart
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4)); // found within the 2 s backoff cap
        Assert.True(server.Pings > 3);
    }

    [Fact]
    public async Task WaitUntilReachable_ServerNeverAnswers_GivesUpAtRaysPatienceOf30s()
    {
        var clock = new VirtualClock();
        var server = new InMemoryRayServer { Ping = _ => Refused() };
        await using var connection = new RayConnection(RayConnectionFaultTests.Settings(clock, TimeSpan.FromSeconds(30)), server, channel: null);

        var reaching = connection.WaitUntilReachableAsync(CancellationToken.None);
        await DriveAsync(clock, reaching);

        var error = await Assert.ThrowsAsync<RayConnectionException>(() => reaching);
        Assert.Equal(TimeSpan.FromSeconds(30), clock.Elapsed); // 5 + 10 + 15 s, Ray's connection_retries = 3
        Assert.True(error.IsTransient);
        Assert.Contains("within the connect deadline of 30 s", error.Message, StringComparison.Ordinal);
        Assert.Contains("connection refused", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WaitUntilReachable_ConnectDeadlineOption_BoundsTheWait()
    {
        var clock = new VirtualClock();
        var server = new InMemoryRayServer { Ping = _ => Refused() };
        var settings = RayConnectionFaultTests.Settings(clock, TimeSpan.FromSeconds(30), o => o.ConnectDeadline = TimeSpan.FromSeconds(3));
        await using var connection = new RayConnection(settings, server, channel: null);

        var reaching = connection.WaitUntilReachableAsync(CancellationToken.None);
        await DriveAsync(clock, reaching);

        var error = await Assert.ThrowsAsync<RayConnectionException>(() => reaching);
        Assert.Equal(TimeSpan.FromSeconds(3), clock.Elapsed);
        Assert.Contains("connect deadline of 3 s", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WaitUntilReachable_NotARayServer_FailsAtOnceWithoutRetrying()
    {
        var clock = new VirtualClock();
        var server = new InMemoryRayServer { Ping = _ => Task.FromException<ClusterInfoResponse>(new RpcException(new Status(StatusCode.Unimplemented, "unknown service"))) };
        await using var connection = new RayConnection(RayConnectionFaultTests.Settings(clock, TimeSpan.FromSeconds(30)), server, channel: null);

        await Assert.ThrowsAsync<RayNotARayServerException>(() => connection.WaitUntilReachableAsync(CancellationToken.None));
        Assert.Equal(1, server.Pings);
        Assert.Equal(TimeSpan.Zero, clock.Elapsed);
    }

    [Fact]
    public void ConnectDeadline_Default_IsTheSumOfRaysAttemptWindows()
    {
        Assert.Equal(TimeSpan.FromSeconds(30), RayConnectionFaultTests.Settings(TimeProvider.System, TimeSpan.Zero).ConnectDeadline);
        Assert.Equal(TimeSpan.FromSeconds(5), RayConnectionFaultTests.Settings(TimeProvider.System, TimeSpan.Zero, o => o.ConnectionRetries = 1).ConnectDeadline);
        Assert.Equal(TimeSpan.FromSeconds(5 + 10 + 15 + 20 + 25 + 30 + 30), RayConnectionFaultTests.Settings(TimeProvider.System, TimeSpan.Zero, o => o.ConnectionRetries = 7).ConnectDeadline);
        Assert.Throws<ArgumentOutOfRangeException>(() => RayConnectionFaultTests.Settings(TimeProvider.System, TimeSpan.Zero, o => o.ConnectDeadline = TimeSpan.Zero));
    }

    /// <summary>Moves virtual time from timer to timer (backoff delays, attempt timeouts, the deadline) until <paramref name="until"/> ends.</summary>
    private static async Task DriveAsync(VirtualClock clock, Task until)
    {
        while (!until.IsCompleted)
        {
            await clock.AdvanceToNextTimerWithinAsync(TimeSpan.FromSeconds(2.5), until);
        }
    }

    private static Task<ClusterInfoResponse> Refused() => Task.FromException<ClusterInfoResponse>(
        new RpcException(new Status(StatusCode.Unavailable, "Error connecting to subchannel.", new SocketException((int)SocketError.ConnectionRefused))));
}
