using Microsoft.Extensions.Logging;

namespace RayClient.Server;

/// <summary>Settings of a <see cref="LocalRayServer"/>.</summary>
public sealed class LocalRayServerOptions
{
    /// <summary>
    /// Address to listen on: an IP address, or a host name (<c>localhost</c> is 127.0.0.1; other names
    /// are resolved once, at start). Default: 127.0.0.1 (loopback only: the server runs arbitrary Python for its clients).
    /// </summary>
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one. Default: 0. (<c>rayclient start</c> uses 10001, Ray's client-server port.)</summary>
    public int Port { get; set; }

    /// <summary>CPUs the server offers to tasks (one Python worker runs per CPU in use). Default: <see cref="Environment.ProcessorCount"/>.</summary>
    public double NumCpus { get; set; } = Environment.ProcessorCount;

    /// <summary>GPUs the server claims to offer (accounting only: nothing checks for real GPUs). Default: 0.</summary>
    public double NumGpus { get; set; }

    /// <summary>Custom resources, as <c>ray start --resources</c>. Default: none.</summary>
    public IDictionary<string, double> Resources { get; } = new Dictionary<string, double>(StringComparer.Ordinal);

    /// <summary>The Python interpreter for workers. Default: null, meaning <c>RAYCLIENT_PYTHON</c> or the real interpreter behind <c>python3</c> on PATH.</summary>
    public string? PythonExecutable { get; set; }

    /// <summary>Where uploaded packages are unpacked. Default: a folder under the system temp directory, removed at dispose.</summary>
    public string? WorkDirectory { get; set; }

    /// <summary>
    /// Python workers started with the server, for tasks without a runtime env, so that the first
    /// tasks do not wait for interpreters to start (started in the background; at most as many as
    /// the pool keeps idle, twice the CPUs and at least 2). Default: 0 (started on demand).
    /// </summary>
    public int PrestartWorkers { get; set; }

    /// <summary>
    /// The grace period after which a disconnected client's session is cleaned up, when the client
    /// did not say (Ray clients always send theirs in Init). Default: null, meaning
    /// <c>RAY_CLIENT_RECONNECT_GRACE_PERIOD</c> or 30 seconds.
    /// </summary>
    public TimeSpan? ReconnectGracePeriod { get; set; }

    /// <summary>
    /// The token every client must send (Ray's token authentication, <c>authorization: Bearer &lt;token&gt;</c>);
    /// a call without it is refused with UNAUTHENTICATED, as by Ray. Default: null, meaning no token unless
    /// <see cref="TokenAuthentication"/> is on. Never logged.
    /// </summary>
    public string? AuthToken { get; set; }

    /// <summary>
    /// Require a token found where Ray looks for it (<c>RAY_AUTH_TOKEN</c>, the file named by <c>RAY_AUTH_TOKEN_PATH</c>,
    /// <c>~/.ray/auth_token</c>); starting fails when there is none. Default: false, or true when <c>RAY_AUTH_MODE=token</c>.
    /// </summary>
    public bool TokenAuthentication { get; set; }

    /// <summary>
    /// Allow listening on a non-loopback address without a token, which lets anyone who can reach the
    /// port run any Python code as this user. Default: false (such a start is refused).
    /// </summary>
    public bool AllowUnauthenticatedNetworkAccess { get; set; }

    /// <summary>
    /// PEM certificate (chain) of the server; with <see cref="TlsKeyFile"/> the server speaks TLS (HTTP/2 over TLS).
    /// Default: null, meaning <c>RAY_TLS_SERVER_CERT</c> when <c>RAY_USE_TLS</c> is 1/true (then, as Ray, the key and CA variables are required too).
    /// </summary>
    public string? TlsCertificateFile { get; set; }

    /// <summary>PEM private key of <see cref="TlsCertificateFile"/>. Default: null, meaning <c>RAY_TLS_SERVER_KEY</c> when <c>RAY_USE_TLS</c> is set.</summary>
    public string? TlsKeyFile { get; set; }

    /// <summary>
    /// PEM CA certificate(s): clients must present a certificate issued by it (mutual TLS, as Ray's
    /// <c>require_client_auth</c>). Default: null, meaning <c>RAY_TLS_CA_CERT</c> when <c>RAY_USE_TLS</c> is set, else no client certificates.
    /// </summary>
    public string? TlsCaCertificateFile { get; set; }

    /// <summary>
    /// The longest grace period a client may ask for in its Init (<c>reconnect_grace_period</c>):
    /// longer requests get this one, so a client cannot make the server keep a dead session's
    /// objects and unfinished uploads for hours. Default: 5 minutes (Ray's clients ask for 30 s).
    /// </summary>
    public TimeSpan MaxReconnectGracePeriod { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The largest KV value a <c>KVPut</c> may store, in bytes. Ray's GCS refuses messages over its
    /// <c>max_grpc_message_size</c> (<c>RAY_max_grpc_message_size</c>, 512 MiB), and so does this
    /// server, with the same error. Default: 512 MiB.
    /// </summary>
    public long MaxKvValueSize { get; set; } = 512L * 1024 * 1024;

    /// <summary>
    /// Bytes that the unfinished chunked uploads (puts and tasks sent in chunks) of one client may
    /// hold on the server. An upload that would go over it is refused, and its chunks are dropped
    /// at once. Default: 2 GiB (the largest object the server can hold).
    /// </summary>
    public long MaxPendingUploadBytesPerSession { get; set; } = 2L * 1024 * 1024 * 1024;

    /// <summary>
    /// Bytes that the unfinished chunked uploads of all clients together may hold. Default: 4 GiB.
    /// </summary>
    public long MaxPendingUploadBytes { get; set; } = 4L * 1024 * 1024 * 1024;

    /// <summary>
    /// Bytes the objects in the server's memory may take (Ray's <c>object_store_memory</c>, also
    /// reported as that resource). A put or task result that does not fit fails with Ray's
    /// <c>ObjectStoreFullError</c> (<see cref="RayObjectStoreFullException"/> in the client);
    /// objects already stored are kept. Default: null, meaning 30% of the memory available to the
    /// process, as Ray's default.
    /// </summary>
    public long? ObjectStoreMemory { get; set; }

    /// <summary>
    /// The most bytes one runtime-env package (<c>working_dir</c>, <c>py_modules</c>) may unpack to;
    /// a package that unpacks to more (a zip bomb) is refused and nothing of it is kept. Default: 2 GiB.
    /// </summary>
    public long MaxPackageUnpackedSize { get; set; } = 2L * 1024 * 1024 * 1024;

    /// <summary>The most entries one runtime-env package may hold. Default: 100,000.</summary>
    public int MaxPackageFiles { get; set; } = 100_000;

    /// <summary>
    /// TCP port of the Ray Jobs REST API (Ray's dashboard port); 0 picks a free one. Default: 0.
    /// (<c>rayclient start</c> uses 8265, Ray's dashboard port.)
    /// </summary>
    public int DashboardPort { get; set; }

    /// <summary>
    /// Where job records and driver logs are kept, so that they survive a restart of the server.
    /// Default: null, meaning a folder inside <see cref="WorkDirectory"/> (gone with it). <c>rayclient
    /// start</c> uses <see cref="DefaultDataDirectory"/>.
    /// </summary>
    public string? DataDirectory { get; set; }

    /// <summary>The stable per-user data directory: <c>rayclient/server</c> under the user's local application data folder.</summary>
    public static string DefaultDataDirectory =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "rayclient", "server");

    /// <summary>
    /// How long a stopped job's processes get between the stop signal and SIGKILL, when neither the
    /// job's env_vars nor the server's environment set <c>RAY_JOB_STOP_WAIT_TIME_S</c>. Default: 3 s (Ray's).
    /// </summary>
    public TimeSpan JobStopWaitTime { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// How long a job may stay PENDING (waiting for its entrypoint resources) before it fails.
    /// Default: <c>RAY_JOB_START_TIMEOUT_SECONDS</c>, or 900 s (Ray's).
    /// </summary>
    public TimeSpan JobStartTimeout { get; set; } =
        TimeSpan.FromSeconds(double.TryParse(Environment.GetEnvironmentVariable("RAY_JOB_START_TIMEOUT_SECONDS"), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var s) && s > 0 ? s : 900);

    /// <summary>Logging. Default: none.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Clock. Default: <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Where the server creates (and sweeps) its own work directories when <see cref="WorkDirectory"/> is not set: tests give each server a root of its own. Default: <c>{temp}/rayclient-server</c>.</summary>
    internal string? WorkDirectoryRoot { get; set; }

    /// <summary>The Ray version ConnectionInfo reports (tests use it to exercise version checks).</summary>
    internal string ReportedRayVersion { get; set; } = ServerState.EmulatedRayVersion;

    /// <summary>The grace period for sessions whose client did not send one: the option, the environment variable, or Ray's 30 s (never over the maximum).</summary>
    internal TimeSpan ResolveDefaultGrace()
    {
        var grace = ReconnectGracePeriod
            ?? (int.TryParse(Environment.GetEnvironmentVariable("RAY_CLIENT_RECONNECT_GRACE_PERIOD"), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds >= 0
                ? TimeSpan.FromSeconds(seconds)
                : TimeSpan.FromSeconds(30));
        return grace > MaxReconnectGracePeriod ? MaxReconnectGracePeriod : grace;
    }

    /// <summary>The object store's capacity: the option, or 30% of the memory available to the process (Ray's default proportion).</summary>
    internal long ResolveObjectStoreMemory() =>
        ObjectStoreMemory ?? (long)(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes * 0.3);

    /// <summary>The IP address <see cref="Host"/> names.</summary>
    /// <exception cref="ArgumentException">The host is neither an IP address nor a name that resolves.</exception>
    internal async Task<System.Net.IPAddress> ResolveListenAddressAsync(CancellationToken cancellationToken)
    {
        var host = Host.Trim();
        if (host.StartsWith('[') && host.EndsWith(']'))
        {
            host = host[1..^1];
        }

        if (System.Net.IPAddress.TryParse(host, out var address))
        {
            return address;
        }

        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            return System.Net.IPAddress.Loopback;
        }

        System.Net.IPAddress[] found;
        try
        {
            found = await System.Net.Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            throw new ArgumentException($"Cannot listen on '{Host}': it is not an IP address and the host name does not resolve ({ex.Message}). Use an address such as 127.0.0.1.", nameof(Host), ex);
        }

        return found.FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork) ?? found.FirstOrDefault()
            ?? throw new ArgumentException($"Cannot listen on '{Host}': the host name resolves to no address. Use an address such as 127.0.0.1.", nameof(Host));
    }

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(Host))
        {
            throw new ArgumentException("Host must name an address to listen on, such as 127.0.0.1.", nameof(Host));
        }

        if (Port is < 0 or > 65535)
        {
            throw new ArgumentOutOfRangeException(nameof(Port), Port, $"The port {Port} is not a TCP port: use 0 (any free port) to 65535.");
        }

        if (DashboardPort is < 0 or > 65535)
        {
            throw new ArgumentOutOfRangeException(nameof(DashboardPort), DashboardPort, "Must be 0 (any free port) to 65535.");
        }

        if (JobStopWaitTime < TimeSpan.Zero || JobStartTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(JobStopWaitTime), "Job timeouts must be positive.");
        }

        if (NumCpus < 0 || NumGpus < 0 || !double.IsFinite(NumCpus) || !double.IsFinite(NumGpus))
        {
            throw new ArgumentOutOfRangeException(nameof(NumCpus), "Resource amounts must be finite and >= 0.");
        }

        if (PrestartWorkers < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(PrestartWorkers), PrestartWorkers, "Must be zero or positive.");
        }

        if (MaxReconnectGracePeriod < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxReconnectGracePeriod), MaxReconnectGracePeriod, "Must be zero or positive.");
        }

        Positive(MaxKvValueSize, nameof(MaxKvValueSize));
        Positive(MaxPendingUploadBytesPerSession, nameof(MaxPendingUploadBytesPerSession));
        Positive(MaxPendingUploadBytes, nameof(MaxPendingUploadBytes));
        Positive(MaxPackageUnpackedSize, nameof(MaxPackageUnpackedSize));
        Positive(MaxPackageFiles, nameof(MaxPackageFiles));
        if (ObjectStoreMemory is { } store)
        {
            Positive(store, nameof(ObjectStoreMemory));
        }

        foreach (var (name, amount) in Resources)
        {
            if (amount < 0 || !double.IsFinite(amount) || string.IsNullOrWhiteSpace(name))
            {
                throw new ArgumentOutOfRangeException(nameof(Resources), $"Resource '{name}' = {amount} is invalid.");
            }
        }
    }

    private static void Positive(long value, string name)
    {
        if (value <= 0)
        {
            throw new ArgumentOutOfRangeException(name, value, "Must be positive.");
        }
    }
}
