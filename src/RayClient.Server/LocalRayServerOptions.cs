using Microsoft.Extensions.Logging;

namespace RayClient.Server;

/// <summary>Settings of a <see cref="LocalRayServer"/>.</summary>
public sealed class LocalRayServerOptions
{
    /// <summary>Address to listen on. Default: 127.0.0.1 (loopback only: the server runs arbitrary Python for its clients).</summary>
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

    /// <summary>Workers started ahead of the first task. Default: 0 (started on demand).</summary>
    public int PrestartWorkers { get; set; }

    /// <summary>
    /// The grace period after which a disconnected client's session is cleaned up, when the client
    /// did not say (Ray clients always send theirs in Init). Default: null, meaning
    /// <c>RAY_CLIENT_RECONNECT_GRACE_PERIOD</c> or 30 seconds.
    /// </summary>
    public TimeSpan? ReconnectGracePeriod { get; set; }

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

    /// <summary>Logging. Default: none.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Clock. Default: <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

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

    internal void Validate()
    {
        if (Port is < 0 or > 65535)
        {
            throw new ArgumentOutOfRangeException(nameof(Port), Port, "Must be 0 (any free port) to 65535.");
        }

        if (NumCpus < 0 || NumGpus < 0 || !double.IsFinite(NumCpus) || !double.IsFinite(NumGpus))
        {
            throw new ArgumentOutOfRangeException(nameof(NumCpus), "Resource amounts must be finite and >= 0.");
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
