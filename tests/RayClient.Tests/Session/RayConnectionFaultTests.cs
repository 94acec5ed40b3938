using System.Collections.Concurrent;
using Grpc.Core;
using Ray.Rpc;
using RayClient.Session;
using RayClient.Tests.Session.Infrastructure;

namespace RayClient.Tests.Session;

/// <summary>
/// The connection's fault path on virtual time: the real <see cref="RayConnection"/> over an
/// in-memory Datapath (<see cref="InMemoryRayServer"/>), with a <see cref="VirtualClock"/> for
/// every timer and timeout, so grace periods and deadlines are checked to the tick in milliseconds.
/// </summary>
public sealed class RayConnectionFaultTests
{
    private static readonly TimeSpan Tick = TimeSpan.FromTicks(1);

    [Fact]
    public async Task GracePeriod_ServerStaysDown_SessionIsLostAtTheExactInstant()
    {
        var (connection, server, clock) = Create(grace: TimeSpan.FromSeconds(10));
        await using var owned = connection;
        server.Ping = _ => InMemoryRayServer.Refuse();
        connection.StartDatapath();
        var stream = await server.NextStreamAsync();
        var pending = connection.SendAsync(ConnectionInfo());
        await stream.NextRequestAsync(DataRequest.TypeOneofCase.ConnectionInfo);

        stream.Break(Unavailable("cut"));
        var reconnecting = await WaitForAsync(connection, s => s.Status == RayConnectionStatus.Reconnecting);
        Assert.Equal(VirtualClock.Epoch, reconnecting.Since);

        clock.Advance(TimeSpan.FromSeconds(10) - Tick);
        Assert.Equal(ConnectionPhase.Reconnecting, connection.Phase);
        Assert.False(pending.IsCompleted);

        clock.Advance(Tick);
        var lost = await Assert.ThrowsAsync<RaySessionLostException>(() => pending.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(VirtualClock.Epoch + TimeSpan.FromSeconds(10), lost.LostAt);
        Assert.Contains("grace period of 10 s", lost.Message, StringComparison.Ordinal);
        Assert.Equal(ConnectionPhase.Lost, connection.Phase);
        Assert.Throws<RaySessionLostException>(() => { _ = connection.SendAsync(ConnectionInfo()); });
    }

    [Fact]
    public async Task Replay_BreakMidBatch_ResendsEveryUnansweredRequestInReqIdOrder()
    {
        var (connection, server, _) = Create();
        await using var owned = connection;
        var cut = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        server.Configure = (stream, number) =>
        {
            var writes = 0;
            if (number == 1)
            {
                stream.BeforeWrite = async _ =>
                {
                    if (++writes == 4)
                    {
                        await cut.Task;
                        throw new IOException("Connection reset by peer");
                    }
                };
            }
        };
        var requests = Enumerable.Range(0, 6).Select(_ => connection.SendAsync(ConnectionInfo())).ToList(); // one batch
        connection.StartDatapath();
        var first = await server.NextStreamAsync();
        var written = new List<int>();
        for (var i = 0; i < 3; i++)
        {
            written.Add((await first.NextRequestAsync()).ReqId);
        }

        first.Respond(new DataResponse { ReqId = 2, ConnectionInfo = new ConnectionInfoResponse() });
        await requests[1].WaitAsync(TimeSpan.FromSeconds(10));
        cut.SetResult(); // the fourth write of the batch fails

        var second = await server.NextStreamAsync();
        var replayed = new List<int>();
        for (var i = 0; i < 5; i++)
        {
            replayed.Add((await second.NextRequestAsync()).ReqId);
        }

        Assert.Equal([1, 2, 3], written);
        Assert.Equal("False", first.Reconnecting);
        Assert.Equal("True", second.Reconnecting);
        Assert.Equal([1, 3, 4, 5, 6], replayed);
        foreach (var id in replayed)
        {
            second.Respond(new DataResponse { ReqId = id, ConnectionInfo = new ConnectionInfoResponse() });
        }

        await Task.WhenAll(requests).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, connection.Reconnects);
        Assert.Equal(ConnectionPhase.Connected, connection.Phase);
    }

    [Fact]
    public async Task Acknowledge_OutOfOrderAnswers_AcknowledgesOnlyTheContiguousWatermark()
    {
        var (connection, server, _) = Create();
        await using var owned = connection;
        var requests = Enumerable.Range(0, 66).Select(_ => connection.SendAsync(ConnectionInfo())).ToList();
        connection.StartDatapath();
        var stream = await server.NextStreamAsync();
        for (var i = 1; i <= 66; i++)
        {
            Assert.Equal(i, (await stream.NextRequestAsync()).ReqId);
        }

        // 32 answers, the first one last: every id up to 32 is consumed.
        await AnswerAsync(stream, requests, [.. Enumerable.Range(2, 31), 1]);
        var ack = await stream.NextRequestAsync();
        Assert.Equal(DataRequest.TypeOneofCase.Acknowledge, ack.TypeCase);
        Assert.Equal(0, ack.ReqId);
        Assert.Equal(32, ack.Acknowledge.ReqId);

        // 32 more, but 33 is still waiting: acknowledging 65 (as Ray's "32nd id") would let the
        // server drop 33's cached answer, so the watermark stays at 32.
        await AnswerAsync(stream, requests, [.. Enumerable.Range(34, 32)]);
        ack = await stream.NextRequestAsync();
        Assert.Equal(32, ack.Acknowledge.ReqId);
        Assert.False(requests[32].IsCompleted);
    }

    [Fact]
    public async Task KeepaliveLoss_ServerSilent_EachPingIsCutAfter5sOfVirtualTimeAndTheSessionResumes()
    {
        var (connection, server, clock) = Create(grace: TimeSpan.FromSeconds(30));
        await using var owned = connection;
        var states = Record(connection);
        connection.StartDatapath();
        var stream = await server.NextStreamAsync();
        var pending = connection.SendAsync(ConnectionInfo());
        await stream.NextRequestAsync(DataRequest.TypeOneofCase.ConnectionInfo);
        var silent = true;
        server.Ping = token => Volatile.Read(ref silent) ? InMemoryRayServer.Hang(token) : Task.FromResult(new ClusterInfoResponse { Json = "{}" });

        // What SocketsHttpHandler reports when a keepalive ping goes unanswered.
        stream.Break(new RpcException(new Status(StatusCode.Unavailable, "Error reading from the stream.", new IOException("The HTTP/2 server didn't respond to a ping within the configured timeout."))));
        var cuts = new List<TimeSpan>();
        while (await server.PingStarted.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)) < 3)
        {
            cuts.Add(await clock.AdvanceToNextTimerWithinAsync(TimeSpan.FromSeconds(5))); // the PING's own deadline
            if (server.Pings == 2)
            {
                Volatile.Write(ref silent, false); // the network heals
            }

            await clock.AdvanceToNextTimerWithinAsync(TimeSpan.FromSeconds(1.5)); // the jittered retry delay
        }

        var resumed = await server.NextStreamAsync();
        var replay = await resumed.NextRequestAsync(DataRequest.TypeOneofCase.ConnectionInfo);
        resumed.Respond(new DataResponse { ReqId = replay.ReqId, ConnectionInfo = new ConnectionInfoResponse { NumClients = 1 } });

        Assert.Equal(1, (await pending.WaitAsync(TimeSpan.FromSeconds(10))).ConnectionInfo.NumClients);
        Assert.Equal([TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5)], cuts);
        Assert.Equal("True", resumed.Reconnecting);
        var reconnected = await WaitForAsync(connection, s => s.Status == RayConnectionStatus.Connected);
        Assert.Contains(states, s => s.Status == RayConnectionStatus.Reconnected && s.Since == VirtualClock.Epoch);
        Assert.DoesNotContain(states, s => s.Status == RayConnectionStatus.Lost);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(13));
        Assert.Equal(ConnectionPhase.Connected, connection.Phase);
    }

    [Fact]
    public async Task Connect_StreamBreaksBeforeInitIsAnswered_ResumesAndReplaysInit()
    {
        var clock = new VirtualClock();
        var server = new InMemoryRayServer();
        var connecting = RayConnection.ConnectAsync(Settings(clock, TimeSpan.FromSeconds(30)), server, channel: null, CancellationToken.None);
        var first = await server.NextStreamAsync();
        var init = await first.NextRequestAsync(DataRequest.TypeOneofCase.Init);
        Assert.Equal(1, init.ReqId);

        first.Break(Unavailable("cut during connect"));
        var second = await server.NextStreamAsync();
        var replayedInit = await second.NextRequestAsync(DataRequest.TypeOneofCase.Init);
        second.Respond(new DataResponse { ReqId = replayedInit.ReqId, Init = new InitResponse { Ok = true } });
        var info = await second.NextRequestAsync(DataRequest.TypeOneofCase.ConnectionInfo);
        second.Respond(new DataResponse { ReqId = info.ReqId, ConnectionInfo = new ConnectionInfoResponse { RayVersion = "2.51.0", PythonVersion = "3.11.7", NumClients = 1 } });
        await using var connection = await connecting.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal("True", second.Reconnecting);
        Assert.Equal(1, replayedInit.ReqId);
        Assert.Equal(2, info.ReqId);
        Assert.Equal("2.51.0", connection.Server.RayVersion);
        Assert.Equal(1, connection.Reconnects);
        Assert.Equal(ConnectionPhase.Connected, connection.Phase);
    }

    [Fact]
    public async Task Dispose_StreamBreaksAfterTheCleanupRequest_ClosesAtOnceWithoutReconnecting()
    {
        var (connection, server, clock) = Create();
        var states = Record(connection);
        connection.StartDatapath();
        var stream = await server.NextStreamAsync();
        stream.EndOnCleanup = false;
        var pending = connection.SendAsync(ConnectionInfo());
        await stream.NextRequestAsync(DataRequest.TypeOneofCase.ConnectionInfo);

        var disposing = connection.DisposeAsync().AsTask();
        await stream.NextRequestAsync(DataRequest.TypeOneofCase.ConnectionCleanup);
        stream.Break(Unavailable("cut while closing"));
        await disposing.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(TimeSpan.Zero, clock.Elapsed); // did not sit out the 5 s close timeout
        Assert.Equal(0, server.Pings);
        Assert.Equal(1, server.StreamsOpened);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => pending);
        Assert.DoesNotContain(states, s => s.Status is RayConnectionStatus.Reconnecting or RayConnectionStatus.Lost);
        Assert.Equal(RayConnectionStatus.Closed, states.Last().Status);
        Assert.Equal(ConnectionPhase.Closed, connection.Phase);
        Assert.Throws<ObjectDisposedException>(() => { _ = connection.SendAsync(ConnectionInfo()); });
        await connection.DisposeAsync(); // idempotent
    }

    [Fact]
    public async Task SecondBreak_WhileReconnecting_KeepsTheFirstReasonAndTheGracePeriodsStart()
    {
        var (connection, server, clock) = Create(grace: TimeSpan.FromSeconds(10));
        await using var owned = connection;
        connection.StartDatapath();
        var first = await server.NextStreamAsync();
        var pending = connection.SendAsync(ConnectionInfo());
        await first.NextRequestAsync(DataRequest.TypeOneofCase.ConnectionInfo);

        first.Break(Unavailable("first cut"));
        var second = await server.NextStreamAsync(); // the PING was answered: a resumed stream opens
        await second.NextRequestAsync(DataRequest.TypeOneofCase.ConnectionInfo);
        clock.Advance(TimeSpan.FromSeconds(3));
        server.Ping = _ => InMemoryRayServer.Refuse("still down");
        second.Break(Unavailable("second cut")); // before the server accepted the resumed stream

        var retrying = await WaitForAsync(connection, s => s.Status == RayConnectionStatus.Reconnecting && s.At == VirtualClock.Epoch + TimeSpan.FromSeconds(3));
        Assert.Equal(VirtualClock.Epoch, retrying.Since);
        Assert.Contains("first cut", retrying.Reason, StringComparison.Ordinal);

        clock.Advance(TimeSpan.FromSeconds(7) - Tick);
        Assert.Equal(ConnectionPhase.Reconnecting, connection.Phase);
        clock.Advance(Tick);

        var lost = await Assert.ThrowsAsync<RaySessionLostException>(() => pending.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(VirtualClock.Epoch + TimeSpan.FromSeconds(10), lost.LostAt);
        Assert.Contains("first cut", lost.Message, StringComparison.Ordinal);
        Assert.Equal(0, connection.Reconnects);
    }

    internal static ConnectionSettings Settings(TimeProvider clock, TimeSpan grace, Action<RaySessionOptions>? configure = null)
    {
        var options = new RaySessionOptions
        {
            Address = "ray://in-memory:10001",
            TimeProvider = clock,
            ReconnectGracePeriod = grace,
            LogSink = _ => { },
        };
        configure?.Invoke(options);
        return ConnectionSettings.Resolve(options, _ => null);
    }

    private static (RayConnection Connection, InMemoryRayServer Server, VirtualClock Clock) Create(TimeSpan? grace = null)
    {
        var clock = new VirtualClock();
        var server = new InMemoryRayServer();
        return (new RayConnection(Settings(clock, grace ?? TimeSpan.FromSeconds(30)), server, channel: null), server, clock);
    }

    private static DataRequest ConnectionInfo() => new() { ConnectionInfo = new ConnectionInfoRequest() };

    private static RpcException Unavailable(string detail) => new(new Status(StatusCode.Unavailable, detail));

    private static async Task AnswerAsync(FakeDatapath stream, List<Task<DataResponse>> requests, int[] ids)
    {
        foreach (var id in ids)
        {
            stream.Respond(new DataResponse { ReqId = id, ConnectionInfo = new ConnectionInfoResponse() });
        }

        await Task.WhenAll(ids.Select(id => requests[id - 1])).WaitAsync(TimeSpan.FromSeconds(10));
    }

    private static ConcurrentQueue<RayConnectionState> Record(RayConnection connection)
    {
        var states = new ConcurrentQueue<RayConnectionState>();
        connection.States.Subscribe(states.Enqueue);
        return states;
    }

    private static async Task<RayConnectionState> WaitForAsync(RayConnection connection, Func<RayConnectionState, bool> predicate)
    {
        var seen = new TaskCompletionSource<RayConnectionState>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = connection.States.Subscribe(state =>
        {
            if (predicate(state))
            {
                seen.TrySetResult(state);
            }
        });
        return await seen.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }
}
