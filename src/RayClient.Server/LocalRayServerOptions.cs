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
    /// TCP port of the Ray Jobs REST API (Ray's dashboard port); 0 picks a free one. Default: 0.
    /// (<c>rayclient start</c> uses 8265, Ray's dashboard port.)
    /// </summary>
    public int DashboardPort { get; set; }

    /// <summary>
    /// A token the Jobs REST API requires (Ray's token auth mode: <c>Authorization: Bearer</c>,
    /// <c>X-Ray-Authorization</c> or the <c>ray-authentication-token</c> cookie). Default: null,
    /// meaning no authentication, Ray's default (<c>RAY_AUTH_MODE=disabled</c>).
    /// </summary>
    public string? DashboardAuthToken { get; set; }

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

    /// <summary>The Ray version ConnectionInfo reports (tests use it to exercise version checks).</summary>
    internal string ReportedRayVersion { get; set; } = ServerState.EmulatedRayVersion;

    /// <summary>The grace period for sessions whose client did not send one: the option, the environment variable, or Ray's 30 s.</summary>
    internal TimeSpan ResolveDefaultGrace() => ReconnectGracePeriod
        ?? (int.TryParse(Environment.GetEnvironmentVariable("RAY_CLIENT_RECONNECT_GRACE_PERIOD"), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds >= 0
            ? TimeSpan.FromSeconds(seconds)
            : TimeSpan.FromSeconds(30));

    internal void Validate()
    {
        if (Port is < 0 or > 65535)
        {
            throw new ArgumentOutOfRangeException(nameof(Port), Port, "Must be 0 (any free port) to 65535.");
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

        foreach (var (name, amount) in Resources)
        {
            if (amount < 0 || !double.IsFinite(amount) || string.IsNullOrWhiteSpace(name))
            {
                throw new ArgumentOutOfRangeException(nameof(Resources), $"Resource '{name}' = {amount} is invalid.");
            }
        }
    }
}
