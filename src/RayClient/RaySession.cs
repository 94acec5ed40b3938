using System.Net.Sockets;
using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Ray.Rpc;
using RayClient.Serialization;
using RayClient.Session;

namespace RayClient;

/// <summary>
/// A connection to a Ray cluster's client server (<c>ray://host:10001</c>): one Ray job, one
/// Datapath stream, the objects and tasks of this job. Create it with <see cref="ConnectAsync(string?, CancellationToken)"/>;
/// dispose it to end the job's session on the server.
/// </summary>
/// <remarks>
/// Thread-safe: any number of threads may submit tasks and get objects at once. Requests are
/// pipelined on one stream, and a broken connection is resumed within the reconnect grace
/// period without losing or repeating work.
/// </remarks>
public sealed partial class RaySession : IAsyncDisposable
{
    private readonly GrpcChannel _channel;
    private readonly RayletDriver.RayletDriverClient _driver;
    private readonly RaySessionOptions _options;
    private readonly ILogger _logger;
    private readonly TimeSpan _grace;
    private readonly Metadata _unaryMetadata;
    private readonly CancellationTokenSource _lifetime = new();
    private DataChannel _data = null!;
    private ReferenceTracker _references = null!;
    private System.Threading.Tasks.Task? _logPump;
    private int _disposed;

    private RaySession(RaySessionOptions options, RayAddress address, GrpcChannel channel, TimeSpan grace, ILogger logger)
    {
        _options = options;
        Address = address;
        _channel = channel;
        _driver = new RayletDriver.RayletDriverClient(channel);
        _grace = grace;
        _logger = logger;
        ClientId = Guid.NewGuid().ToString("N");
        _unaryMetadata = BuildMetadata(reconnecting: null);
    }

    /// <summary>The server this session is connected to.</summary>
    public RayAddress Address { get; }

    /// <summary>This session's client id (32 hex digits), sent with every request as Ray does.</summary>
    public string ClientId { get; }

    /// <summary>What the server reported about itself when the session started.</summary>
    public RayServerInfo Server { get; private set; } = null!;

    /// <summary>The reconnect grace period in force.</summary>
    public TimeSpan ReconnectGracePeriod => _grace;

    /// <summary>The job's namespace as requested (null for an anonymous namespace).</summary>
    public string? Namespace { get; private set; }

    /// <summary>Connection state changes (connected, reconnecting, reconnected, lost, closed); replays the current state to new subscribers.</summary>
    public IObservable<RayConnectionState> ConnectionStates => _data.States;

    /// <summary>The current connection state.</summary>
    public RayConnectionState ConnectionState => _data.CurrentState;

    /// <summary>
    /// Waits until the connection status differs from <paramref name="lastObservedStatus"/> (as
    /// GrpcChannel.WaitForStateChangedAsync). Returns at once if it already differs.
    /// </summary>
    public async System.Threading.Tasks.Task<RayConnectionState> WaitForStateChangedAsync(RayConnectionStatus lastObservedStatus, CancellationToken cancellationToken = default)
    {
        var changed = new System.Threading.Tasks.TaskCompletionSource<RayConnectionState>(System.Threading.Tasks.TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = _data.States.Subscribe(state =>
        {
            if (state.Status != lastObservedStatus)
            {
                changed.TrySetResult(state);
            }
        });
        return await changed.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }


    internal DataChannel DataChannel => _data;

    internal int PickleProtocol { get; private set; } = 4;

    /// <summary>Connects to <paramref name="address"/> (<c>ray://host[:port]</c>, or <c>RAY_ADDRESS</c> when null).</summary>
    /// <exception cref="RayConnectionException">Nothing answers there, or the connection failed.</exception>
    /// <exception cref="RayNotARayServerException">Something answers, but it is not a Ray client server.</exception>
    /// <exception cref="RayVersionMismatchException">The server's Ray version is not supported.</exception>
    public static System.Threading.Tasks.Task<RaySession> ConnectAsync(string? address = null, CancellationToken cancellationToken = default) =>
        ConnectAsync(new RaySessionOptions { Address = address }, cancellationToken);

    /// <summary>Connects with the given options.</summary>
    /// <inheritdoc cref="ConnectAsync(string?, CancellationToken)"/>
    public static async System.Threading.Tasks.Task<RaySession> ConnectAsync(RaySessionOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var address = RayAddress.Parse(options.Address);
        var grace = options.ResolveGracePeriod();
        var logger = options.LoggerFactory?.CreateLogger("RayClient") ?? (ILogger)NullLogger.Instance;
        var useTls = options.UseTls || IsTrue(Environment.GetEnvironmentVariable("RAY_USE_TLS"));
        var channel = GrpcChannel.ForAddress(address.ToHttpUri(useTls), new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                KeepAlivePingDelay = options.KeepAlivePingDelay,
                KeepAlivePingTimeout = options.KeepAlivePingTimeout,
                KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                // .NET honours system proxies by default; Ray disables gRPC proxies unless asked (spec §2.2).
                UseProxy = IsTrue(Environment.GetEnvironmentVariable("RAY_grpc_enable_http_proxy")),
                EnableMultipleHttp2Connections = true,
                ConnectTimeout = options.ConnectTimeout,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                InitialHttp2StreamWindowSize = 8 * 1024 * 1024,
            },
            // Ray sets 2 GiB limits; older servers send 64 MiB chunks (ray-versions.md row 14).
            MaxReceiveMessageSize = null,
            MaxSendMessageSize = null,
            DisposeHttpClient = true,
        });

        var session = new RaySession(options, address, channel, grace, logger);
        try
        {
            await session.StartAsync(cancellationToken).ConfigureAwait(false);
            return session;
        }
        catch
        {
            await session.DisposeAsync().ConfigureAwait(false); // tells the server to drop what Init made
            throw;
        }
    }

    private async System.Threading.Tasks.Task StartAsync(CancellationToken cancellationToken)
    {
        LogConnecting(_logger, Address.ToString(), ClientId);
        await PingUntilReadyAsync(cancellationToken).ConfigureAwait(false);

        Namespace = _options.Namespace ?? NullIfEmpty(Environment.GetEnvironmentVariable("RAY_NAMESPACE"));
        var runtimeEnv = _options.RuntimeEnv;
        var envJson = Environment.GetEnvironmentVariable("RAY_RUNTIME_ENV");
        if (runtimeEnv is null && !string.IsNullOrWhiteSpace(envJson))
        {
            runtimeEnv = RuntimeEnv.FromJson(envJson);
        }

        // Upload local working_dir / py_modules before Init (spec §2.6 step 4, §8).
        if (runtimeEnv is not null)
        {
            runtimeEnv = await RayClient.Packaging.RuntimeEnvUploader.UploadLocalPackagesAsync(
                runtimeEnv, new KvPackageStore(this), new RayClient.Packaging.UploadOptions(), _options.UploadProgress, cancellationToken).ConfigureAwait(false);
        }

        _data = new DataChannel(
            _channel.CreateCallInvoker(),
            reconnecting => BuildMetadata(reconnecting),
            token => PingAsync(token),
            _grace,
            _options.TimeProvider,
            _logger);
        _references = new ReferenceTracker(this, _options.TimeProvider);
        _data.Start();

        var init = new InitRequest
        {
            JobConfig = Google.Protobuf.ByteString.CopyFrom(JobConfigPickle.Create(Namespace, runtimeEnv)),
            RayInitKwargs = "{}",
            ReconnectGracePeriod = (int)_grace.TotalSeconds,
        };
        var initResponse = await AwaitDataAsync(_data.SendAsync(new DataRequest { Init = init }), cancellationToken).ConfigureAwait(false);
        if (!initResponse.Init.Ok)
        {
            throw RayErrors.InitFailed(initResponse.Init.Msg, Address);
        }

        var infoResponse = await AwaitDataAsync(_data.SendAsync(new DataRequest { ConnectionInfo = new ConnectionInfoRequest() }), cancellationToken).ConfigureAwait(false);
        var info = infoResponse.ConnectionInfo;
        Server = new RayServerInfo(info.RayVersion, info.RayCommit, info.PythonVersion, info.NumClients, NullIfEmpty(info.ProtocolVersion));
        CheckVersion();
        PickleProtocol = Server.PythonSupportsProtocol5 ? 5 : 4;
        _logPump = System.Threading.Tasks.Task.Run(() => PumpLogsAsync(_lifetime.Token));
        LogConnected(_logger, Address.ToString(), Server.RayVersion, Server.PythonVersion);
    }

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

        var ignore = _options.IgnoreVersionMismatch || Environment.GetEnvironmentVariable("RAY_IGNORE_VERSION_MISMATCH") is not null;
        if (ignore)
        {
            LogVersionIgnored(_logger, Server.RayVersion, RayVersions.SupportedRange);
            return;
        }

        throw new RayVersionMismatchException(
            $"The server at {Address} runs Ray {Server.RayVersion}, but RayClient implements {RayVersions.SupportedRange}. " +
            "Connect to a supported cluster, or set RaySessionOptions.IgnoreVersionMismatch (or the environment variable RAY_IGNORE_VERSION_MISMATCH) to try anyway.",
            Server.RayVersion,
            RayVersions.SupportedRange);
    }

    // ------------------------------------------------------------------------------------------
    // Connecting
    // ------------------------------------------------------------------------------------------
    private async System.Threading.Tasks.Task PingUntilReadyAsync(CancellationToken cancellationToken)
    {
        // Ray: worker.py :: _connect_channel — a PING per attempt, the per-attempt timeout growing
        // by 5 s up to 30 s. Refused connections back off briefly instead of sleeping the timeout.
        var timeout = _options.ConnectTimeout;
        Exception? last = null;
        for (var attempt = 1; attempt <= _options.ConnectionRetries; attempt++)
        {
            try
            {
                using var attemptCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                attemptCts.CancelAfter(timeout);
                await PingAsync(attemptCts.Token).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex)
            {
                var classified = RayErrors.ClassifyConnectFailure(ex, Address, timeout);
                if (!classified.IsTransient)
                {
                    throw classified;
                }

                last = classified;
                LogAttemptFailed(_logger, attempt, _options.ConnectionRetries, classified.Message);
                if (attempt < _options.ConnectionRetries)
                {
                    await System.Threading.Tasks.Task.Delay(TimeSpan.FromMilliseconds(250 * (1 << Math.Min(attempt, 4))), _options.TimeProvider, cancellationToken).ConfigureAwait(false);
                }

                timeout = TimeSpan.FromSeconds(Math.Min(timeout.TotalSeconds + 5, 30));
            }
        }

        throw last!;
    }

    private async System.Threading.Tasks.Task PingAsync(CancellationToken cancellationToken)
    {
        using var call = _driver.ClusterInfoAsync(
            new ClusterInfoRequest { Type = ClusterInfoType.Types.TypeEnum.Ping },
            new CallOptions(headers: _unaryMetadata, cancellationToken: cancellationToken));
        await call.ResponseAsync.ConfigureAwait(false);
    }

    private Metadata BuildMetadata(bool? reconnecting)
    {
        var metadata = new Metadata { { "client_id", ClientId } };
        foreach (var (key, value) in _options.Metadata)
        {
            metadata.Add(key, value);
        }

        var token = _options.AuthToken ?? NullIfEmpty(Environment.GetEnvironmentVariable("RAY_AUTH_TOKEN"));
        if (token is not null)
        {
            metadata.Add("authorization", $"Bearer {token}");
        }

        if (reconnecting is { } isReconnecting)
        {
            metadata.Add("reconnecting", isReconnecting ? "True" : "False");
        }

        return metadata;
    }

    internal CallOptions UnaryOptions(CancellationToken cancellationToken, DateTime? deadline = null) =>
        new(headers: _unaryMetadata, deadline: deadline, cancellationToken: cancellationToken);

    internal RayletDriver.RayletDriverClient Driver => _driver;

    /// <summary>Awaits a Datapath response, letting the caller stop waiting (the request itself goes on).</summary>
    internal static async System.Threading.Tasks.Task<DataResponse> AwaitDataAsync(System.Threading.Tasks.Task<DataResponse> response, CancellationToken cancellationToken)
    {
        return await response.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs a unary call, retrying transient failures (Unavailable, a broken connection) while the
    /// session is alive, for at most the reconnect grace period. Only idempotent calls use this.
    /// </summary>
    internal async System.Threading.Tasks.Task<T> CallUnaryAsync<T>(Func<CallOptions, System.Threading.Tasks.Task<T>> call, CancellationToken cancellationToken)
    {
        var started = _options.TimeProvider.GetUtcNow();
        var delay = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            _data?.ThrowIfUnusable();
            try
            {
                return await call(UnaryOptions(cancellationToken)).ConfigureAwait(false);
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable && !cancellationToken.IsCancellationRequested
                                           && _options.TimeProvider.GetUtcNow() - started < _grace)
            {
                LogUnaryRetry(_logger, ex.Status.Detail);
                await System.Threading.Tasks.Task.Delay(delay, _options.TimeProvider, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 1000));
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(cancellationToken);
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // Logs
    // ------------------------------------------------------------------------------------------
    private async System.Threading.Tasks.Task PumpLogsAsync(CancellationToken cancellationToken)
    {
        var client = new RayletLogStreamer.RayletLogStreamerClient(_channel);
        var sink = _options.LogSink ?? WriteToConsole;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                using var call = client.Logstream(new CallOptions(headers: BuildMetadata(reconnecting: null), cancellationToken: cancellationToken));
                await call.RequestStream.WriteAsync(new LogSettingsRequest { Enabled = true, Loglevel = 20 }, cancellationToken).ConfigureAwait(false);
                while (await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
                {
                    var line = call.ResponseStream.Current;
                    sink(new RayLogLine(line.Msg, line.Level, line.Name));
                }

                return;
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.Unimplemented or StatusCode.ResourceExhausted)
            {
                return; // the server does not stream logs to us; tasks still work
            }
            catch (Exception ex) when (ex is RpcException or IOException or HttpRequestException)
            {
                LogLogStreamBroken(_logger, ex.Message);
                try
                {
                    await System.Threading.Tasks.Task.Delay(TimeSpan.FromMilliseconds(500), _options.TimeProvider, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private static void WriteToConsole(RayLogLine line)
    {
        switch (line.Level)
        {
            case -1:
                Console.Out.Write(line.Message);
                break;
            case -2:
                Console.Error.Write(line.Message);
                break;
            case >= 30:
                Console.Error.WriteLine(line.Message);
                break;
        }
    }

    // ------------------------------------------------------------------------------------------
    // Disposal
    // ------------------------------------------------------------------------------------------

    /// <summary>
    /// Ends the session: tells the server to clean up at once (its objects are released and its
    /// non-detached actors end), closes the connection and fails whatever is still pending. Idempotent.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _references?.Dispose();
        if (_data is not null)
        {
            await _data.DisposeAsync().ConfigureAwait(false);
        }

        await _lifetime.CancelAsync().ConfigureAwait(false);
        if (_logPump is not null)
        {
            await _logPump.ConfigureAwait(false);
        }

        _channel.Dispose();
        _lifetime.Dispose();
    }

    internal void ThrowIfDisposed()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        _data.ThrowIfUnusable();
    }

    private static bool IsTrue(string? value) => value is not null && (value == "1" || value.Equals("true", StringComparison.OrdinalIgnoreCase));

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    [LoggerMessage(EventId = RayEventIds.Connecting, EventName = nameof(RayEventIds.Connecting), Level = LogLevel.Debug,
        Message = "Connecting to {Address} as client {ClientId}.")]
    private static partial void LogConnecting(ILogger logger, string address, string clientId);

    [LoggerMessage(EventId = RayEventIds.Connected, EventName = nameof(RayEventIds.Connected), Level = LogLevel.Information,
        Message = "Connected to {Address}: Ray {RayVersion}, Python {PythonVersion}.")]
    private static partial void LogConnected(ILogger logger, string address, string rayVersion, string pythonVersion);

    [LoggerMessage(EventId = RayEventIds.ConnectAttemptFailed, EventName = nameof(RayEventIds.ConnectAttemptFailed), Level = LogLevel.Warning,
        Message = "Connection attempt {Attempt} of {Attempts} failed: {Reason}")]
    private static partial void LogAttemptFailed(ILogger logger, int attempt, int attempts, string reason);

    [LoggerMessage(EventId = RayEventIds.VersionMismatchIgnored, EventName = nameof(RayEventIds.VersionMismatchIgnored), Level = LogLevel.Warning,
        Message = "The server runs Ray {RayVersion}, outside {Supported}; continuing because version mismatches are ignored.")]
    private static partial void LogVersionIgnored(ILogger logger, string rayVersion, string supported);

    [LoggerMessage(EventId = RayEventIds.LogStreamBroken, EventName = nameof(RayEventIds.LogStreamBroken), Level = LogLevel.Debug,
        Message = "The log stream broke ({Reason}); reopening it.")]
    private static partial void LogLogStreamBroken(ILogger logger, string reason);

    [LoggerMessage(EventId = RayEventIds.UnaryRetry, EventName = nameof(RayEventIds.UnaryRetry), Level = LogLevel.Debug,
        Message = "A unary call failed transiently ({Reason}); retrying.")]
    private static partial void LogUnaryRetry(ILogger logger, string reason);
}

/// <summary>What a Ray client server reported about itself (ConnectionInfo).</summary>
/// <param name="RayVersion">Ray release of the server, e.g. <c>2.9.3</c>.</param>
/// <param name="RayCommit">Git commit of that Ray build.</param>
/// <param name="PythonVersion">Python version of the server, e.g. <c>3.11.7</c>.</param>
/// <param name="NumClients">Connected clients, this one included.</param>
/// <param name="ProtocolVersion">Protocol date string of Ray 2.0-2.9 servers; null for newer ones.</param>
public sealed record RayServerInfo(string RayVersion, string RayCommit, string PythonVersion, int NumClients, string? ProtocolVersion)
{
    internal bool PythonSupportsProtocol5
    {
        get
        {
            var parts = PythonVersion.Split('.');
            return parts.Length >= 2 && int.TryParse(parts[0], out var major) && int.TryParse(parts[1], out var minor)
                && (major > 3 || (major == 3 && minor >= 8));
        }
    }
}
