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
/// period without losing or repeating work. The connection and its whole fault path live in
/// <c>Session/RayConnection</c>; this type is the public API over it.
/// </remarks>
public sealed partial class RaySession : IAsyncDisposable
{
    private readonly RayConnection _connection;
    private readonly ReferenceTracker _references;
    private readonly TaskSubmitter _submitter;
    private readonly ObjectRequests _objects;
    private readonly ClusterRequests _cluster;

    internal RaySession(RayConnection connection)
    {
        _connection = connection;
        _references = new ReferenceTracker(this, connection.Settings.TimeProvider);
        _submitter = new TaskSubmitter(this, connection);
        _objects = new ObjectRequests(connection);
        _cluster = new ClusterRequests(connection);
    }

    /// <summary>The server this session is connected to.</summary>
    public RayAddress Address => _connection.Settings.Address;

    /// <summary>This session's client id (32 hex digits), sent with every request as Ray does.</summary>
    public string ClientId => _connection.ClientId;

    /// <summary>What the server reported about itself when the session started.</summary>
    public RayServerInfo Server => _connection.Server;

    /// <summary>The reconnect grace period in force.</summary>
    public TimeSpan ReconnectGracePeriod => _connection.Settings.GracePeriod;

    /// <summary>The job's namespace as requested (null for an anonymous namespace).</summary>
    public string? Namespace => _connection.Settings.Namespace;

    /// <summary>Connection state changes (connected, reconnecting, reconnected, lost, closed); replays the current state to new subscribers.</summary>
    public IObservable<RayConnectionState> ConnectionStates => _connection.States;

    /// <summary>The current connection state.</summary>
    public RayConnectionState ConnectionState => _connection.CurrentState;

    /// <summary>
    /// Waits until the connection status differs from <paramref name="lastObservedStatus"/> (as
    /// GrpcChannel.WaitForStateChangedAsync). Returns at once if it already differs.
    /// </summary>
    public async System.Threading.Tasks.Task<RayConnectionState> WaitForStateChangedAsync(RayConnectionStatus lastObservedStatus, CancellationToken cancellationToken = default)
    {
        var changed = new System.Threading.Tasks.TaskCompletionSource<RayConnectionState>(System.Threading.Tasks.TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = _connection.States.Subscribe(state =>
        {
            if (state.Status != lastObservedStatus)
            {
                changed.TrySetResult(state);
            }
        });
        return await changed.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The connection: channel, Datapath, retries, state. Tests and the benchmark reach the raw driver through it.</summary>
    internal RayConnection Connection => _connection;

    /// <summary>Task submission: the function-payload cache, the ClientTask requests, the submit ordering.</summary>
    internal TaskSubmitter Submitter => _submitter;

    internal int PickleProtocol => _connection.PickleProtocol;

    internal TimeProvider Time => _connection.Settings.TimeProvider;

    /// <summary>Connects to <paramref name="address"/> (<c>ray://host[:port]</c>, or <c>RAY_ADDRESS</c> when null).</summary>
    /// <exception cref="RayConnectionException">Nothing answers there within the connect deadline, or the connection failed.</exception>
    /// <exception cref="RayNotARayServerException">Something answers, but it is not a Ray client server.</exception>
    /// <exception cref="RayVersionMismatchException">The server's Ray version is not supported.</exception>
    public static System.Threading.Tasks.Task<RaySession> ConnectAsync(string? address = null, CancellationToken cancellationToken = default) =>
        ConnectAsync(new RaySessionOptions { Address = address }, cancellationToken);

    /// <summary>Connects with the given options.</summary>
    /// <inheritdoc cref="ConnectAsync(string?, CancellationToken)"/>
    public static async System.Threading.Tasks.Task<RaySession> ConnectAsync(RaySessionOptions options, CancellationToken cancellationToken = default)
    {
        var settings = ConnectionSettings.Resolve(options);
        var connection = await RayConnection.ConnectAsync(settings, cancellationToken).ConfigureAwait(false);
        return new RaySession(connection);
    }

    /// <summary>
    /// Ends the session: tells the server to clean up at once (its objects are released and its
    /// non-detached actors end), closes the connection and fails whatever is still pending. Idempotent.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _references.Dispose();
        await _connection.DisposeAsync().ConfigureAwait(false);
    }

    internal void ThrowIfDisposed() => _connection.ThrowIfUnusable();
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
