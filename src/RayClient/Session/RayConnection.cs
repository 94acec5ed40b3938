using System.Buffers;
using System.Collections.Concurrent;
using System.Reactive.Subjects;
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Polly.Timeout;
using Ray.Rpc;
using RayClient.Serialization;

namespace RayClient.Session;

/// <summary>The states of a <see cref="RayConnection"/>; every change goes through <c>RayConnection.Transition</c>.</summary>
internal enum ConnectionPhase
{
    /// <summary>Reaching the server and opening the first Datapath stream.</summary>
    Connecting,

    /// <summary>A Datapath stream is open and accepted.</summary>
    Connected,

    /// <summary>The stream broke; the session is being resumed within the grace period (the outage's first reason is kept).</summary>
    Reconnecting,

    /// <summary>Disposal started: no reconnects, no new requests; the cleanup request is on its way.</summary>
    Closing,

    /// <summary>The session is gone (grace period over, or an unrecoverable error). Terminal until disposal.</summary>
    Lost,

    /// <summary>Disposed.</summary>
    Closed,
}

/// <summary>
/// A session's connection and its whole fault path, in one type: the channel, the settings, the
/// retry pipelines (connect, reconnect, unary calls, log stream; Polly, built once), the log pump
/// and the Datapath stream (req_ids, chunking, response matching, acknowledgements, replay).
/// </summary>
/// <remarks>
/// <para>
/// State is one <see cref="ConnectionPhase"/> field changed by compare-and-swap in
/// <see cref="Transition"/> (as StackExchange.Redis's PhysicalBridge). Every failure enters through
/// <see cref="Break"/> (as Npgsql's connector): a recoverable one moves Connected to Reconnecting and
/// records the outage (its start and first reason), later breaks of the same outage only end the
/// stream attempt that failed; an unrecoverable one, or the grace period running out, moves to Lost
/// and fails everything pending with the first reason.
/// </para>
/// <para>
/// Transitions: Connecting → Connected (first stream opened) · Connecting/Connected → Reconnecting
/// (recoverable break) · Reconnecting → Connected (the resumed stream answered; publishes
/// Reconnected then Connected) · Connecting/Connected/Reconnecting → Lost (unrecoverable break or
/// grace period over) · Connecting/Connected/Reconnecting → Closing → Closed (disposal) · Lost → Closed
/// (disposal of a lost session; Lost stays the published state).
/// </para>
/// <para>
/// Behaviour follows Ray's <c>python/ray/util/client/worker.py</c> (connect, reconnect, unary retries)
/// and <c>dataclient.py</c> (Datapath, replay, acknowledgements); spec §2.6, §3 and §4.
/// Every timer and timeout runs on the settings' <see cref="TimeProvider"/>.
/// </para>
/// </remarks>
internal sealed partial class RayConnection : IAsyncDisposable
{
    /// <summary>Ray's chunk size for puts, tasks and gets (spec §3.3, <c>OBJECT_TRANSFER_CHUNK_SIZE</c>).</summary>
    public const int ChunkSize = 5 * 1024 * 1024;

    /// <summary>Ray's reconnect PING deadline (<c>dataclient.py :: _reconnect_channel</c>).</summary>
    internal static readonly TimeSpan ReconnectPingTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How long disposal waits for the server to end the stream after the cleanup request.</summary>
    internal static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);

    private const int AcknowledgeBatchSize = 32;

    /// <summary>Requests written per flush at most, under load.</summary>
    private const int MaxWriteBatch = 64;

    private static readonly WriteOptions BufferHint = new(WriteFlags.BufferHint);
    private static readonly ResiliencePropertyKey<ConnectProgress> ConnectProgressKey = new("RayClient.ConnectProgress");
    private static readonly ResiliencePropertyKey<DateTimeOffset> UnaryStartedKey = new("RayClient.UnaryStarted");

    private readonly ConnectionSettings _settings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CallInvoker _invoker;
    private readonly IDisposable? _channel;
    private readonly RayletDriver.RayletDriverClient _driver;
    private readonly Metadata _unaryMetadata;
    private readonly Metadata _openMetadata;
    private readonly Metadata _resumeMetadata;
    private readonly ResiliencePipeline _connectPipeline;
    private readonly ResiliencePipeline _reconnectPipeline;
    private readonly ResiliencePipeline _unaryPipeline;
    private readonly ResiliencePipeline _logPipeline;
    private readonly Channel<object> _outbound = Channel.CreateUnbounded<object>();
    private readonly ConcurrentDictionary<int, PendingRequest> _pending = new();
    private readonly BehaviorSubject<RayConnectionState> _states;
    private readonly CancellationTokenSource _shutdown = new();
    private readonly object _ackLock = new();
    private readonly SortedSet<int> _completedAhead = [];
    private int _phase = (int)ConnectionPhase.Connecting;
    private Outage? _outage;
    private RaySessionLostException? _lostReason;
    private CancellationTokenSource? _generation;
    private int _nextReqId;
    private int _ackWatermark;
    private int _completionsSinceAck;
    private Task? _supervisor;
    private Task? _logPump;
    private long _reconnects;

    internal RayConnection(ConnectionSettings settings, CallInvoker invoker, IDisposable? channel)
    {
        _settings = settings;
        _time = settings.TimeProvider;
        _logger = settings.Logger;
        _invoker = invoker;
        _channel = channel;
        _driver = new RayletDriver.RayletDriverClient(invoker);
        ClientId = Guid.NewGuid().ToString("N");
        _unaryMetadata = BuildMetadata(reconnecting: null);
        _openMetadata = BuildMetadata(reconnecting: false);
        _resumeMetadata = BuildMetadata(reconnecting: true);
        _states = new BehaviorSubject<RayConnectionState>(new RayConnectionState(RayConnectionStatus.Connecting, _time.GetUtcNow()));
        _connectPipeline = BuildConnectPipeline();
        _reconnectPipeline = BuildReconnectPipeline();
        _unaryPipeline = BuildUnaryPipeline();
        _logPipeline = BuildLogPipeline();
    }

    /// <summary>This session's client id (32 hex digits), sent with every request as Ray does.</summary>
    public string ClientId { get; }

    public ConnectionSettings Settings => _settings;

    /// <summary>What the server reported about itself; set once connected.</summary>
    public RayServerInfo Server { get; private set; } = null!;

    /// <summary>Pickle protocol for values sent to this server (5 from Python 3.8 on).</summary>
    public int PickleProtocol { get; private set; } = 4;

    public ConnectionPhase Phase => (ConnectionPhase)Volatile.Read(ref _phase);

    public IObservable<RayConnectionState> States => _states;

    public RayConnectionState CurrentState => _states.Value;

    /// <summary>Number of times the stream was resumed after a break.</summary>
    public long Reconnects => Interlocked.Read(ref _reconnects);

    /// <summary>The error that ended the session, if it is lost.</summary>
    public RaySessionLostException? LostReason => Volatile.Read(ref _lostReason);

    /// <summary>True while requests may be sent (not lost, not closing).</summary>
    public bool IsUsable => Phase is ConnectionPhase.Connecting or ConnectionPhase.Connected or ConnectionPhase.Reconnecting;

    internal RayletDriver.RayletDriverClient Driver => _driver;

    /// <summary>Cancelled when the connection closes (background work of the session stops with it).</summary>
    internal CancellationToken Lifetime => _shutdown.Token;

    internal CallOptions UnaryOptions(CancellationToken cancellationToken, DateTime? deadline = null) =>
        new(headers: _unaryMetadata, deadline: deadline, cancellationToken: cancellationToken);

    // ------------------------------------------------------------------------------------------
    // Connecting (spec §2.6)
    // ------------------------------------------------------------------------------------------

    /// <summary>Creates the channel and connects: reach the server, upload packages, open the Datapath, Init, ConnectionInfo, version check.</summary>
    public static Task<RayConnection> ConnectAsync(ConnectionSettings settings, CancellationToken cancellationToken)
    {
        var channel = RayChannelFactory.Create(settings);
        return ConnectAsync(settings, channel.CreateCallInvoker(), channel, cancellationToken);
    }

    /// <summary>Connects over <paramref name="invoker"/> (tests pass an in-memory transport); disposes <paramref name="channel"/> with the connection.</summary>
    internal static async Task<RayConnection> ConnectAsync(ConnectionSettings settings, CallInvoker invoker, IDisposable? channel, CancellationToken cancellationToken)
    {
        var connection = new RayConnection(settings, invoker, channel);
        try
        {
            await connection.StartAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false); // tells the server to drop what Init made
            throw;
        }
    }

    private async Task StartAsync(CancellationToken cancellationToken)
    {
        LogConnecting(_logger, _settings.Address.ToString(), ClientId);
        await WaitUntilReachableAsync(cancellationToken).ConfigureAwait(false);

        // Upload local working_dir / py_modules before Init (spec §2.6 step 4, §8).
        var runtimeEnv = _settings.RuntimeEnv;
        if (runtimeEnv is not null)
        {
            runtimeEnv = await RayClient.Packaging.RuntimeEnvUploader.UploadLocalPackagesAsync(
                runtimeEnv, new KvPackageStore(this), new RayClient.Packaging.UploadOptions(), _settings.UploadProgress, cancellationToken).ConfigureAwait(false);
        }

        StartDatapath();
        var init = new InitRequest
        {
            JobConfig = ByteString.CopyFrom(JobConfigPickle.Create(_settings.Namespace, runtimeEnv)),
            RayInitKwargs = "{}",
            ReconnectGracePeriod = (int)_settings.GracePeriod.TotalSeconds,
        };
        var initResponse = await SendAsync(new DataRequest { Init = init }).WaitAsync(cancellationToken).ConfigureAwait(false);
        if (!initResponse.Init.Ok)
        {
            throw RayErrors.InitFailed(initResponse.Init.Msg, _settings.Address);
        }

        var infoResponse = await SendAsync(new DataRequest { ConnectionInfo = new ConnectionInfoRequest() }).WaitAsync(cancellationToken).ConfigureAwait(false);
        var info = infoResponse.ConnectionInfo;
        Server = new RayServerInfo(info.RayVersion, info.RayCommit, info.PythonVersion, info.NumClients, string.IsNullOrEmpty(info.ProtocolVersion) ? null : info.ProtocolVersion);
        CheckVersion();
        PickleProtocol = Server.PythonSupportsProtocol5 ? 5 : 4;
        _logPump = Task.Run(() => PumpLogsAsync(_shutdown.Token), CancellationToken.None);
        LogConnected(_logger, _settings.Address.ToString(), Server.RayVersion, Server.PythonVersion);
    }

    /// <summary>Opens the Datapath stream (and keeps it open until closed or lost).</summary>
    internal void StartDatapath() => _supervisor = Task.Run(SuperviseAsync, CancellationToken.None);

    private void CheckVersion()
    {
        bool supported;
        try
        {
            supported = RayVersions.IsSupported(Server.RayVersion);
        }
        catch (FormatException)
        {
            supported = false;
        }

        if (supported)
        {
            return;
        }

        if (_settings.IgnoreVersionMismatch)
        {
            LogVersionIgnored(_logger, Server.RayVersion, RayVersions.SupportedRange);
            return;
        }

        throw new RayVersionMismatchException(
            $"The server at {_settings.Address} runs Ray {Server.RayVersion}, but RayClient implements {RayVersions.SupportedRange}. " +
            "Connect to a supported cluster, or set RaySessionOptions.IgnoreVersionMismatch (or the environment variable RAY_IGNORE_VERSION_MISMATCH) to try anyway.",
            Server.RayVersion,
            RayVersions.SupportedRange);
    }

    /// <summary>
    /// PINGs until the server answers (Ray: <c>worker.py :: _connect_channel</c>), for at most the
    /// connect deadline. Errors retrying cannot fix fail at once.
    /// </summary>
    internal async Task WaitUntilReachableAsync(CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        var progress = new ConnectProgress();
        context.Properties.Set(ConnectProgressKey, progress);
        try
        {
            await _connectPipeline.ExecuteAsync(
                static async (ctx, state) =>
                {
                    var (connection, progress, callerToken) = state;
                    var timeout = ConnectionSettings.AttemptTimeout(connection._settings.ConnectTimeout, progress.TimedOut);
                    progress.Attempts++;
                    try
                    {
                        await connection.PingAsync(ctx.CancellationToken).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (!callerToken.IsCancellationRequested)
                    {
                        if (ctx.CancellationToken.IsCancellationRequested)
                        {
                            // This attempt's timeout, or the connect deadline: the timeout strategies
                            // decide which. The last answer that did come (a refusal) stays the diagnosis.
                            progress.TimedOut++;
                            throw new OperationCanceledException(ctx.CancellationToken);
                        }

                        progress.Last = RayErrors.ClassifyConnectFailure(ex, connection._settings.Address, timeout, sentToken: connection._settings.SendsToken, usedTls: connection._settings.UseTls);
                        throw progress.Last;
                    }
                },
                context,
                (this, progress, cancellationToken)).ConfigureAwait(false);
        }
        catch (TimeoutRejectedException) when (!cancellationToken.IsCancellationRequested)
        {
            // The connect deadline: say so, with the last attempt's own diagnosis.
            throw RayErrors.ConnectDeadlineExceeded(_settings.Address, _settings.ConnectDeadline, progress.Attempts, progress.Last);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <summary>
    /// Ray's patience with its faster retries: a deadline (Ray's attempt windows added up, 30 s by
    /// default) around jittered exponential backoff (0.25 s doubling to 2 s; gRPC's own reconnect
    /// backoff starts at 1 s), each PING bounded by Ray's attempt timeout (5 s, 5 s more after each
    /// PING that went unanswered, at most 30 s). Ray sleeps a whole window after a refused PING;
    /// retrying sooner finds a server that just became ready within about 2 s.
    /// </summary>
    private ResiliencePipeline BuildConnectPipeline() =>
        new ResiliencePipelineBuilder { TimeProvider = _time }
            .AddTimeout(_settings.ConnectDeadline)
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => new ValueTask<bool>(
                    args.Outcome.Exception is RayConnectionException { IsTransient: true } or TimeoutRejectedException
                    && !args.Context.CancellationToken.IsCancellationRequested),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(250),
                MaxDelay = TimeSpan.FromSeconds(2),
                OnRetry = args =>
                {
                    LogAttemptFailed(_logger, args.AttemptNumber + 1, args.Outcome.Exception?.Message ?? "no answer");
                    return default;
                },
            })
            .AddTimeout(new TimeoutStrategyOptions
            {
                TimeoutGenerator = args => new ValueTask<TimeSpan>(
                    ConnectionSettings.AttemptTimeout(_settings.ConnectTimeout, args.Context.Properties.GetValue(ConnectProgressKey, new ConnectProgress()).TimedOut)),
            })
            .Build();

    internal async Task PingAsync(CancellationToken cancellationToken)
    {
        using var call = _driver.ClusterInfoAsync(
            new ClusterInfoRequest { Type = ClusterInfoType.Types.TypeEnum.Ping },
            new CallOptions(headers: _unaryMetadata, cancellationToken: cancellationToken));
        await call.ResponseAsync.ConfigureAwait(false);
    }

    private Metadata BuildMetadata(bool? reconnecting)
    {
        var metadata = new Metadata { { "client_id", ClientId } };
        foreach (var (key, value) in _settings.Metadata)
        {
            metadata.Add(key, value);
        }

        if (reconnecting is { } isReconnecting)
        {
            metadata.Add("reconnecting", isReconnecting ? "True" : "False");
        }

        return metadata;
    }

    // ------------------------------------------------------------------------------------------
    // Unary calls and the log stream
    // ------------------------------------------------------------------------------------------

    /// <summary>
    /// Runs a unary call, retrying transient failures (Unavailable, a broken connection) while the
    /// session is usable, for at most the reconnect grace period. Only idempotent calls use this.
    /// </summary>
    public async Task<T> CallUnaryAsync<T>(Func<CallOptions, Task<T>> call, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(UnaryStartedKey, _time.GetUtcNow());
        try
        {
            return await _unaryPipeline.ExecuteAsync(
                static async (ctx, state) =>
                {
                    state.connection.ThrowIfUnusable();
                    return await state.call(state.connection.UnaryOptions(ctx.CancellationToken)).ConfigureAwait(false);
                },
                context,
                (connection: this, call)).ConfigureAwait(false);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    private ResiliencePipeline BuildUnaryPipeline() =>
        new ResiliencePipelineBuilder { TimeProvider = _time }
            .AddRetry(new RetryStrategyOptions
            {
                // Ray's _call_stub retries recoverable errors until shutdown; we bound it by the grace period.
                ShouldHandle = args => new ValueTask<bool>(
                    args.Outcome.Exception is RpcException { StatusCode: StatusCode.Unavailable }
                    && !args.Context.CancellationToken.IsCancellationRequested
                    && IsUsable
                    && _time.GetUtcNow() - args.Context.Properties.GetValue(UnaryStartedKey, _time.GetUtcNow()) < _settings.GracePeriod),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                Delay = TimeSpan.FromMilliseconds(50),
                MaxDelay = TimeSpan.FromSeconds(1),
                OnRetry = args =>
                {
                    LogUnaryRetry(_logger, (args.Outcome.Exception as RpcException)?.Status.Detail ?? string.Empty);
                    return default;
                },
            })
            .Build();

    private ResiliencePipeline BuildLogPipeline() =>
        new ResiliencePipelineBuilder { TimeProvider = _time }
            .AddRetry(new RetryStrategyOptions
            {
                // Ray's logsclient reopens the stream 0.5 s after a recoverable error; logs of the outage are lost.
                ShouldHandle = args => new ValueTask<bool>(
                    !args.Context.CancellationToken.IsCancellationRequested
                    && args.Outcome.Exception is (RpcException and not RpcException { StatusCode: StatusCode.Unimplemented or StatusCode.ResourceExhausted }) or IOException or HttpRequestException),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Constant,
                Delay = TimeSpan.FromMilliseconds(500),
                OnRetry = args =>
                {
                    LogLogStreamBroken(_logger, args.Outcome.Exception?.Message ?? string.Empty);
                    return default;
                },
            })
            .Build();

    private async Task PumpLogsAsync(CancellationToken cancellationToken)
    {
        var client = new RayletLogStreamer.RayletLogStreamerClient(_invoker);
        var sink = _settings.LogSink ?? WriteToConsole;
        try
        {
            await _logPipeline.ExecuteAsync(
                async token =>
                {
                    using var call = client.Logstream(new CallOptions(headers: _unaryMetadata, cancellationToken: token));
                    await call.RequestStream.WriteAsync(new LogSettingsRequest { Enabled = true, Loglevel = 20 }, token).ConfigureAwait(false);
                    while (await call.ResponseStream.MoveNext(token).ConfigureAwait(false))
                    {
                        var line = call.ResponseStream.Current;
                        sink(new RayLogLine(line.Msg, line.Level, line.Name));
                    }
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (cancellationToken.IsCancellationRequested)
        {
            // closing
        }
        catch (RpcException ex) when (ex.StatusCode is StatusCode.Unimplemented or StatusCode.ResourceExhausted)
        {
            // the server does not stream logs to us; tasks still work
        }
    }

    private static void WriteToConsole(RayLogLine line)
    {
        var writer = ConsoleWriterFor(line.Level, Console.Out, Console.Error);
        if (line.Level < 0)
        {
            writer?.Write(line.Message); // worker output carries its own line ends
        }
        else
        {
            writer?.WriteLine(line.Message);
        }
    }

    /// <summary>
    /// Where a forwarded line goes, as Ray's <c>logsclient.py</c> decides: -2 (a worker's stderr)
    /// to stderr, any other negative level (stdout) to stdout; server log records of WARNING and
    /// above to stderr, quieter ones nowhere.
    /// </summary>
    internal static TextWriter? ConsoleWriterFor(int level, TextWriter stdout, TextWriter stderr) => level switch
    {
        -2 => stderr,
        < 0 => stdout,
        >= 30 => stderr,
        _ => null,
    };

    // ------------------------------------------------------------------------------------------
    // State: one field, one transition method, one way in for failures
    // ------------------------------------------------------------------------------------------

    /// <summary>Moves from <paramref name="from"/> to <paramref name="to"/> if the state is still <paramref name="from"/>, then publishes <paramref name="publish"/>.</summary>
    private bool Transition(ConnectionPhase from, ConnectionPhase to, RayConnectionState? publish = null)
    {
        if (Interlocked.CompareExchange(ref _phase, (int)to, (int)from) != (int)from)
        {
            return false;
        }

        if (publish is not null)
        {
            _states.OnNext(publish);
        }

        return true;
    }

    /// <summary>
    /// The one way in for failures (idempotent). A recoverable failure of a live session starts an
    /// outage (Reconnecting, its start and reason recorded); during an outage it only ends the
    /// stream attempt that failed, keeping the first reason and the grace period's start. An
    /// unrecoverable failure, or any failure with reconnects disabled, loses the session. Closing,
    /// lost and closed sessions ignore it.
    /// </summary>
    public void Break(Exception reason)
    {
        while (true)
        {
            var phase = Phase;
            if (phase is ConnectionPhase.Closing or ConnectionPhase.Lost or ConnectionPhase.Closed)
            {
                return;
            }

            var recoverable = IsRecoverable(reason);
            if (reason is RaySessionLostException || _settings.GracePeriod <= TimeSpan.Zero || !recoverable)
            {
                if (Lose(phase, CreateLostException(reason, _outage?.Since ?? _time.GetUtcNow(), recoverable)))
                {
                    return;
                }

                continue; // the state moved meanwhile; decide again
            }

            if (phase == ConnectionPhase.Reconnecting)
            {
                CancelGeneration(); // a resumed stream failed before being accepted: same outage
                return;
            }

            var outage = new Outage(_time.GetUtcNow(), reason);
            if (Transition(phase, ConnectionPhase.Reconnecting))
            {
                Volatile.Write(ref _outage, outage);
                LogStreamBroken(_logger, reason.Message);
                CancelGeneration();
                return;
            }
        }
    }

    /// <summary>Ends the current stream attempt, if one is running.</summary>
    private void CancelGeneration()
    {
        try
        {
            Volatile.Read(ref _generation)?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // that attempt just ended by itself
        }
    }

    private bool Lose(ConnectionPhase from, RaySessionLostException lost)
    {
        Interlocked.CompareExchange(ref _lostReason, lost, null);
        var reason = Volatile.Read(ref _lostReason)!;
        if (!Transition(from, ConnectionPhase.Lost, new RayConnectionState(RayConnectionStatus.Lost, _time.GetUtcNow(), Since: _outage?.Since, Reason: reason.Message)))
        {
            return false;
        }

        LogSessionLost(_logger, reason.Message);
        CancelGeneration();
        FailEverything(reason);
        return true;
    }

    private void FailEverything(Exception error)
    {
        _outbound.Writer.TryComplete();
        foreach (var pending in _pending.Values)
        {
            pending.TrySetException(error);
        }

        _pending.Clear();
        while (_outbound.Reader.TryRead(out var item))
        {
            (item as PendingRequest)?.TrySetException(error);
        }
    }

    /// <summary>Throws the session-lost error when the session can no longer be used.</summary>
    public void ThrowIfUnusable()
    {
        if (!IsUsable)
        {
            throw Unusable();
        }
    }

    private Exception Unusable() => Phase == ConnectionPhase.Lost && LostReason is { } lost
        ? lost
        : new ObjectDisposedException(nameof(RaySession), "The Ray session was closed.");

    private RaySessionLostException CreateLostException(Exception failure, DateTimeOffset since, bool recoverable)
    {
        if (failure is RaySessionLostException already)
        {
            return already;
        }

        var now = _time.GetUtcNow();
        string message;
        if (failure is RpcException { StatusCode: StatusCode.NotFound } notFound)
        {
            message = $"The Ray session was lost at {now:O}: the server no longer knows this session ({notFound.Status.Detail}). " +
                      "It was restarted or cleaned the session up after the grace period. Open a new session; every ObjectRef and actor handle of the old one is invalid.";
        }
        else if (_settings.GracePeriod <= TimeSpan.Zero && recoverable)
        {
            message = $"The Ray session was lost at {now:O}: the connection broke ({failure.Message}) and reconnects are disabled (grace period 0).";
        }
        else if (recoverable)
        {
            message = $"The Ray session was lost at {now:O}: the connection broke at {since:O} ({failure.Message}) and could not be resumed within the reconnect grace period of {_settings.GracePeriod.TotalSeconds:0.#} s. " +
                      "Every ObjectRef and actor handle of this session is invalid; open a new session.";
        }
        else
        {
            message = $"The Ray session was lost at {now:O}: the server ended it with an unrecoverable error ({failure.Message}).";
        }

        return new RaySessionLostException(message, now, failure);
    }

    /// <summary>Which stream failures may be resumed (Ray: <c>worker.py :: _can_reconnect</c>, spec §4.2).</summary>
    internal static bool IsRecoverable(Exception? error) => error switch
    {
        RpcException rpc => rpc.StatusCode switch
        {
            StatusCode.ResourceExhausted or StatusCode.InvalidArgument or StatusCode.NotFound
                or StatusCode.FailedPrecondition or StatusCode.Aborted or StatusCode.Unauthenticated
                or StatusCode.PermissionDenied or StatusCode.Unimplemented => false,
            StatusCode.Internal when rpc.Status.Detail == "Exception serializing request!" => false,
            _ => true,
        },
        RayConnectionException connection => connection.IsTransient,
        IOException or HttpRequestException or ObjectDisposedException or OperationCanceledException => true,
        _ => false,
    };

    // ------------------------------------------------------------------------------------------
    // The Datapath: requests
    // ------------------------------------------------------------------------------------------

    /// <summary>Queues a tracked request; the task completes with its response.</summary>
    public Task<DataResponse> SendAsync(DataRequest request, PickledData? payload = null) =>
        Enqueue(new PendingCall(request, payload)).Completion;

    /// <summary>Queues a tracked request and returns its record (for callers that need to cancel it).</summary>
    public T Enqueue<T>(T pending)
        where T : PendingRequest
    {
        ThrowIfUnusable();
        if (!_outbound.Writer.TryWrite(pending))
        {
            pending.TrySetException(Unusable());
        }

        return pending;
    }

    /// <summary>Stops waiting for a request (caller timeout or cancellation); a late answer is ignored.</summary>
    public void Abandon(PendingRequest pending, Exception reason)
    {
        if (pending.TrySetException(reason) && pending.ReqId != 0 && _pending.TryRemove(pending.ReqId, out _))
        {
            OnConsumed(pending.ReqId);
        }
    }

    // ------------------------------------------------------------------------------------------
    // The Datapath: one stream generation at a time
    // ------------------------------------------------------------------------------------------
    private async Task SuperviseAsync()
    {
        var resume = false;
        while (true)
        {
            var generation = CancellationTokenSource.CreateLinkedTokenSource(_shutdown.Token);
            Volatile.Write(ref _generation, generation);
            AsyncDuplexStreamingCall<DataRequest, DataResponse>? call = null;
            try
            {
                if (!IsUsable)
                {
                    return;
                }

                call = _invoker.AsyncDuplexStreamingCall(PooledWire.ClientDatapath, host: null, new CallOptions(headers: resume ? _resumeMetadata : _openMetadata, cancellationToken: generation.Token).WithWaitForReady());
                var writer = WriteLoopAsync(call.RequestStream, replay: resume, generation.Token);
                var reader = ReadLoopAsync(call.ResponseStream, resume, generation.Token);
                if (!resume)
                {
                    Transition(ConnectionPhase.Connecting, ConnectionPhase.Connected, new RayConnectionState(RayConnectionStatus.Connected, _time.GetUtcNow()));
                }

                var first = await Task.WhenAny(writer, reader).ConfigureAwait(false);
                await first.ConfigureAwait(false); // surfaces the failure, if any
                if (first == writer)
                {
                    // Writer finished: closing gracefully. Wait for the server to end the stream.
                    await reader.ConfigureAwait(false);
                    return;
                }

                // The server ended the stream without an error while we still use it.
                throw new RayConnectionException("The server ended the Datapath stream.", isTransient: true);
            }
            catch (Exception ex)
            {
                Break(ex);
            }
            finally
            {
                await generation.CancelAsync().ConfigureAwait(false);
                call?.Dispose();
                Interlocked.CompareExchange(ref _generation, null, generation);
                generation.Dispose();
            }

            if (Phase != ConnectionPhase.Reconnecting || !await WaitForServerAsync().ConfigureAwait(false))
            {
                return;
            }

            resume = true;
        }
    }

    /// <summary>
    /// PINGs with jittered backoff until the server answers, for at most the grace period counted
    /// from the start of the outage (a Polly timeout around a Polly retry, each PING bounded by 5 s).
    /// </summary>
    private async Task<bool> WaitForServerAsync()
    {
        var outage = Volatile.Read(ref _outage)!;
        if (RemainingGrace() <= TimeSpan.Zero)
        {
            Break(CreateLostException(outage.Reason, outage.Since, recoverable: true));
            return false;
        }

        var attempt = 0;
        try
        {
            await _reconnectPipeline.ExecuteAsync(
                async token =>
                {
                    attempt++;
                    PublishAttempt(attempt, outage);
                    await PingAsync(token).ConfigureAwait(false);
                },
                _shutdown.Token).ConfigureAwait(false);
            return IsUsable;
        }
        catch (TimeoutRejectedException)
        {
            Break(CreateLostException(outage.Reason, outage.Since, recoverable: true));
            return false;
        }
        catch (OperationCanceledException) when (_shutdown.IsCancellationRequested)
        {
            return false;
        }
        catch (Exception ex)
        {
            Break(CreateLostException(ex, outage.Since, recoverable: false));
            return false;
        }
    }

    private TimeSpan RemainingGrace() =>
        Volatile.Read(ref _outage) is { } outage ? _settings.GracePeriod - (_time.GetUtcNow() - outage.Since) : _settings.GracePeriod;

    private ResiliencePipeline BuildReconnectPipeline() =>
        new ResiliencePipelineBuilder { TimeProvider = _time }
            // A zero timeout would mean "none" to Polly: the caller checks the grace period first, and a tick is the least.
            .AddTimeout(new TimeoutStrategyOptions { TimeoutGenerator = _ => new ValueTask<TimeSpan>(RemainingGrace() is var left && left > TimeSpan.Zero ? left : TimeSpan.FromTicks(1)) })
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => new ValueTask<bool>(args.Outcome.Exception is not null && !_shutdown.IsCancellationRequested && Phase == ConnectionPhase.Reconnecting),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(50),
                MaxDelay = TimeSpan.FromSeconds(1),
                OnRetry = args =>
                {
                    LogReconnectAttemptFailed(_logger, args.AttemptNumber + 1, args.Outcome.Exception?.Message);
                    return default;
                },
            })
            .AddTimeout(ReconnectPingTimeout)
            .Build();

    private void PublishAttempt(int attempt, Outage outage)
    {
        if (Phase == ConnectionPhase.Reconnecting)
        {
            _states.OnNext(new RayConnectionState(RayConnectionStatus.Reconnecting, _time.GetUtcNow(), attempt, outage.Since, outage.Reason.Message));
        }
    }

    /// <summary>The first response on a resumed stream: the server accepted the session.</summary>
    private void OnResumed()
    {
        var outage = Volatile.Read(ref _outage);
        var since = outage?.Since ?? _time.GetUtcNow();
        if (Transition(ConnectionPhase.Reconnecting, ConnectionPhase.Connected, new RayConnectionState(RayConnectionStatus.Reconnected, _time.GetUtcNow(), Since: since)))
        {
            Volatile.Write(ref _outage, null);
            Interlocked.Increment(ref _reconnects);
            LogReconnected(_logger, _time.GetUtcNow() - since);
            _states.OnNext(new RayConnectionState(RayConnectionStatus.Connected, _time.GetUtcNow()));
        }
    }

    // ------------------------------------------------------------------------------------------
    // Writing
    // ------------------------------------------------------------------------------------------
    private async Task WriteLoopAsync(IClientStreamWriter<DataRequest> stream, bool replay, CancellationToken cancellationToken)
    {
        if (replay)
        {
            // Re-send, in req_id order, everything the server may not have answered (spec §3.8).
            var outstanding = _pending.Values.Where(p => !p.IsCompleted).OrderBy(p => p.ReqId).ToList();
            for (var i = 0; i < outstanding.Count; i++)
            {
                await WriteRequestAsync(stream, outstanding[i], moreQueued: i + 1 < outstanding.Count, cancellationToken).ConfigureAwait(false);
            }
        }

        // Take what is queued as one batch, drop what was abandoned meanwhile, and flush with the
        // batch's last write: a write is buffered only when a write certainly follows it, so a
        // request never waits unflushed behind one that was abandoned before it was sent.
        var reader = _outbound.Reader;
        var batch = new List<object>(MaxWriteBatch);
        while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < MaxWriteBatch && reader.TryRead(out var item))
            {
                if (item is PendingRequest pending)
                {
                    if (pending.IsCompleted)
                    {
                        continue; // abandoned before it was sent
                    }

                    if (pending.ReqId == 0)
                    {
                        // Tracked from here on: if the stream breaks before it is written, the
                        // replay of the next stream sends it with the others, in req_id order.
                        pending.Request.ReqId = NextReqId();
                        _pending[pending.ReqId] = pending;
                    }
                }

                batch.Add(item);
            }

            for (var i = 0; i < batch.Count; i++)
            {
                var moreQueued = i + 1 < batch.Count;
                switch (batch[i])
                {
                    case PendingRequest pending:
                        await WriteRequestAsync(stream, pending, moreQueued, cancellationToken).ConfigureAwait(false);
                        break;
                    case DataRequest untracked:
                        stream.WriteOptions = moreQueued ? BufferHint : null;
                        await stream.WriteAsync(untracked, cancellationToken).ConfigureAwait(false);
                        if (untracked.TypeCase == DataRequest.TypeOneofCase.ConnectionCleanup)
                        {
                            // Graceful close: nothing follows the cleanup request.
                            await stream.CompleteAsync().ConfigureAwait(false);
                            return;
                        }

                        break;
                }
            }
        }
    }

    private static async Task WriteRequestAsync(IClientStreamWriter<DataRequest> stream, PendingRequest pending, bool moreQueued, CancellationToken cancellationToken)
    {
        var request = pending.Request;
        if (pending.Payload is not { } payload)
        {
            stream.WriteOptions = moreQueued ? BufferHint : null;
            await stream.WriteAsync(request, cancellationToken).ConfigureAwait(false);
            return;
        }

        // Chunk lazily, at send time, so a request's chunks are contiguous on the wire (spec §3.3);
        // chunk_id/total_chunks are set even for a single chunk.
        var sequence = payload.AsSequence();
        var total = sequence.Length;
        var chunks = (int)Math.Max(1, (total + ChunkSize - 1) / ChunkSize);
        for (var i = 0; i < chunks; i++)
        {
            var slice = sequence.Slice((long)i * ChunkSize, Math.Min(ChunkSize, total - ((long)i * ChunkSize)));
            byte[]? rented = null;
            ByteString data;
            if (slice.IsSingleSegment)
            {
                data = UnsafeByteOperations.UnsafeWrap(slice.First);
            }
            else
            {
                rented = ArrayPool<byte>.Shared.Rent((int)slice.Length);
                slice.CopyTo(rented);
                data = UnsafeByteOperations.UnsafeWrap(rented.AsMemory(0, (int)slice.Length));
            }

            try
            {
                var chunk = new DataRequest { ReqId = request.ReqId };
                if (request.TypeCase == DataRequest.TypeOneofCase.Put)
                {
                    var put = request.Put;
                    chunk.Put = new PutRequest
                    {
                        ClientRefId = put.ClientRefId,
                        OwnerId = put.OwnerId,
                        TotalSize = total,
                        TotalChunks = chunks,
                        ChunkId = i,
                        Data = data,
                    };
                }
                else
                {
                    var task = request.Task.Clone();
                    task.Data = data;
                    task.ChunkId = i;
                    task.TotalChunks = chunks;
                    chunk.Task = task;
                }

                stream.WriteOptions = moreQueued || i + 1 < chunks ? BufferHint : null;
                await stream.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                if (rented is not null)
                {
                    ArrayPool<byte>.Shared.Return(rented);
                }
            }
        }
    }

    private int NextReqId()
    {
        // 1 … int.MaxValue, then 1 again; 0 is reserved for untracked messages (spec §3.1).
        var id = ++_nextReqId;
        if (id <= 0)
        {
            _nextReqId = 1;
            id = 1;
        }

        return id;
    }

    // ------------------------------------------------------------------------------------------
    // Reading
    // ------------------------------------------------------------------------------------------
    private async Task ReadLoopAsync(IAsyncStreamReader<DataResponse> stream, bool resumed, CancellationToken cancellationToken)
    {
        var first = resumed;
        while (await stream.MoveNext(cancellationToken).ConfigureAwait(false))
        {
            var response = stream.Current;
            if (first)
            {
                first = false;
                OnResumed();
            }

            if (response.ReqId == 0)
            {
                continue; // the cleanup answer, or a synthetic message: nothing waits for it
            }

            if (!_pending.TryGetValue(response.ReqId, out var pending))
            {
                continue; // answer to an abandoned request, or a duplicate after a replay
            }

            Deliver(pending, response);
        }
    }

    /// <summary>Hands one response to its request: a chunk to an async get, the answer to any other request.</summary>
    private void Deliver(PendingRequest pending, DataResponse response)
    {
        if (pending is PendingGet get)
        {
            if (response.TypeCase != DataResponse.TypeOneofCase.Get)
            {
                Fail(pending, new RayConnectionException($"The server answered a Get request with {response.TypeCase}.", isTransient: false));
                return;
            }

            ReceivedObject? whole;
            try
            {
                whole = get.AddGetChunk(response.Get);
            }
            catch (RayException ex)
            {
                // This object cannot be received; the rest of the stream is fine.
                Fail(pending, ex);
                return;
            }

            if (whole is not null)
            {
                _pending.TryRemove(pending.ReqId, out _);
                get.TrySetResult(whole);
                OnConsumed(pending.ReqId);
            }

            return;
        }

        var call = (PendingCall)pending;
        if (pending.Request.TypeCase is DataRequest.TypeOneofCase.Put or DataRequest.TypeOneofCase.Task
            && response.TypeCase is not (DataResponse.TypeOneofCase.Put or DataResponse.TypeOneofCase.TaskTicket))
        {
            Fail(pending, new RayConnectionException($"The server answered a {pending.Request.TypeCase} request with {response.TypeCase}.", isTransient: false));
            return;
        }

        _pending.TryRemove(pending.ReqId, out _);
        call.TrySetResult(response);
        OnConsumed(pending.ReqId);
    }

    private void Fail(PendingRequest pending, Exception error)
    {
        _pending.TryRemove(pending.ReqId, out _);
        pending.TrySetException(error);
        OnConsumed(pending.ReqId);
    }

    /// <summary>
    /// Acknowledges with a contiguous watermark (every id up to it consumed), every 32 consumed
    /// responses; Ray acknowledges "the 32nd id", which can purge an unconsumed entry (spec §3.6, §12.6).
    /// </summary>
    private void OnConsumed(int reqId)
    {
        if (_settings.GracePeriod <= TimeSpan.Zero || reqId <= 0)
        {
            return;
        }

        int watermark;
        lock (_ackLock)
        {
            if (reqId == _ackWatermark + 1)
            {
                _ackWatermark = reqId;
                while (_completedAhead.Count > 0 && _completedAhead.Min == _ackWatermark + 1)
                {
                    _ackWatermark = _completedAhead.Min;
                    _completedAhead.Remove(_ackWatermark);
                }
            }
            else if (reqId > _ackWatermark)
            {
                _completedAhead.Add(reqId);
            }

            if (++_completionsSinceAck < AcknowledgeBatchSize)
            {
                return;
            }

            _completionsSinceAck = 0;
            watermark = _ackWatermark;
        }

        if (watermark > 0)
        {
            _outbound.Writer.TryWrite(new DataRequest { Acknowledge = new AcknowledgeRequest { ReqId = watermark } });
        }
    }

    // ------------------------------------------------------------------------------------------
    // Shutdown
    // ------------------------------------------------------------------------------------------

    /// <summary>
    /// Graceful close (spec §4.6, Ray's <c>dataclient.py :: close</c>): stops reconnecting first, sends
    /// ConnectionCleanup on a live stream, waits (at most 5 s) for the server to end it, then fails
    /// whatever is still pending and disposes the channel. Idempotent.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        while (true)
        {
            var phase = Phase;
            if (phase is ConnectionPhase.Closing or ConnectionPhase.Closed)
            {
                return;
            }

            if (phase == ConnectionPhase.Lost)
            {
                if (Transition(ConnectionPhase.Lost, ConnectionPhase.Closed))
                {
                    await TearDownAsync().ConfigureAwait(false); // Lost stays the published state
                    return;
                }

                continue;
            }

            if (Transition(phase, ConnectionPhase.Closing))
            {
                await CloseAsync(sendCleanup: phase == ConnectionPhase.Connected).ConfigureAwait(false);
                return;
            }
        }
    }

    private async Task CloseAsync(bool sendCleanup)
    {
        if (sendCleanup && _supervisor is not null)
        {
            _outbound.Writer.TryWrite(new DataRequest { ConnectionCleanup = new ConnectionCleanupRequest() });
            try
            {
                await _supervisor.WaitAsync(CloseTimeout, _time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                LogCloseTimedOut(_logger);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                LogCloseFailed(_logger, ex.Message);
            }
        }

        FailEverything(new ObjectDisposedException(nameof(RaySession), "The Ray session was closed."));
        await TearDownAsync().ConfigureAwait(false);
        Transition(ConnectionPhase.Closing, ConnectionPhase.Closed, new RayConnectionState(RayConnectionStatus.Closed, _time.GetUtcNow()));
    }

    private async Task TearDownAsync()
    {
        _outbound.Writer.TryComplete();
        await _shutdown.CancelAsync().ConfigureAwait(false);
        foreach (var background in new[] { _supervisor, _logPump })
        {
            if (background is null)
            {
                continue;
            }

            try
            {
                await background.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                LogCloseFailed(_logger, ex.Message);
            }
        }

        _channel?.Dispose();
        if (Phase == ConnectionPhase.Closed)
        {
            _states.OnCompleted();
        }
    }

    /// <summary>An outage: when the stream first broke, and why.</summary>
    private sealed record Outage(DateTimeOffset Since, Exception Reason);

    /// <summary>One connect's attempts, shared by the attempt callback and the per-attempt timeout.</summary>
    private sealed class ConnectProgress
    {
        public int Attempts;
        public int TimedOut;
        public RayConnectionException? Last;
    }

    [LoggerMessage(EventId = RayEventIds.Connecting, EventName = nameof(RayEventIds.Connecting), Level = LogLevel.Debug,
        Message = "Connecting to {Address} as client {ClientId}.")]
    private static partial void LogConnecting(ILogger logger, string address, string clientId);

    [LoggerMessage(EventId = RayEventIds.Connected, EventName = nameof(RayEventIds.Connected), Level = LogLevel.Information,
        Message = "Connected to {Address}: Ray {RayVersion}, Python {PythonVersion}.")]
    private static partial void LogConnected(ILogger logger, string address, string rayVersion, string pythonVersion);

    [LoggerMessage(EventId = RayEventIds.ConnectAttemptFailed, EventName = nameof(RayEventIds.ConnectAttemptFailed), Level = LogLevel.Warning,
        Message = "Connection attempt {Attempt} failed: {Reason}")]
    private static partial void LogAttemptFailed(ILogger logger, int attempt, string reason);

    [LoggerMessage(EventId = RayEventIds.VersionMismatchIgnored, EventName = nameof(RayEventIds.VersionMismatchIgnored), Level = LogLevel.Warning,
        Message = "The server runs Ray {RayVersion}, outside {Supported}; continuing because version mismatches are ignored.")]
    private static partial void LogVersionIgnored(ILogger logger, string rayVersion, string supported);

    [LoggerMessage(EventId = RayEventIds.LogStreamBroken, EventName = nameof(RayEventIds.LogStreamBroken), Level = LogLevel.Debug,
        Message = "The log stream broke ({Reason}); reopening it.")]
    private static partial void LogLogStreamBroken(ILogger logger, string reason);

    [LoggerMessage(EventId = RayEventIds.UnaryRetry, EventName = nameof(RayEventIds.UnaryRetry), Level = LogLevel.Debug,
        Message = "A unary call failed transiently ({Reason}); retrying.")]
    private static partial void LogUnaryRetry(ILogger logger, string reason);

    [LoggerMessage(EventId = RayEventIds.DatapathBroken, EventName = nameof(RayEventIds.DatapathBroken), Level = LogLevel.Warning,
        Message = "The Datapath stream broke ({Reason}); resuming the session within the grace period.")]
    private static partial void LogStreamBroken(ILogger logger, string reason);

    [LoggerMessage(EventId = RayEventIds.ReconnectAttemptFailed, EventName = nameof(RayEventIds.ReconnectAttemptFailed), Level = LogLevel.Debug,
        Message = "Reconnect attempt {Attempt} failed ({Reason}); retrying within the grace period.")]
    private static partial void LogReconnectAttemptFailed(ILogger logger, int attempt, string? reason);

    [LoggerMessage(EventId = RayEventIds.DatapathResumed, EventName = nameof(RayEventIds.DatapathResumed), Level = LogLevel.Information,
        Message = "The session was resumed after {Outage}.")]
    private static partial void LogReconnected(ILogger logger, TimeSpan outage);

    [LoggerMessage(EventId = RayEventIds.SessionLost, EventName = nameof(RayEventIds.SessionLost), Level = LogLevel.Error,
        Message = "{Reason}")]
    private static partial void LogSessionLost(ILogger logger, string reason);

    [LoggerMessage(EventId = RayEventIds.CloseTimedOut, EventName = nameof(RayEventIds.CloseTimedOut), Level = LogLevel.Warning,
        Message = "The server did not end the Datapath stream within 5 s of the cleanup request.")]
    private static partial void LogCloseTimedOut(ILogger logger);

    [LoggerMessage(EventId = RayEventIds.CloseFailed, EventName = nameof(RayEventIds.CloseFailed), Level = LogLevel.Debug,
        Message = "Closing the Datapath stream failed: {Reason}")]
    private static partial void LogCloseFailed(ILogger logger, string reason);
}
