using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace RayClient.Session;

/// <summary>
/// A session's settings, resolved once at connect from <see cref="RaySessionOptions"/> and the
/// environment variables Ray reads (this is the only place that reads them), then immutable.
/// </summary>
internal sealed record ConnectionSettings
{
    /// <summary>Ray's per-attempt connect timeout grows by this much per attempt (<c>worker.py :: backoff</c>).</summary>
    internal static readonly TimeSpan ConnectTimeoutStep = TimeSpan.FromSeconds(5);

    /// <summary>Ray's <c>MAX_TIMEOUT_SEC</c>: the longest connect attempt.</summary>
    internal static readonly TimeSpan MaxConnectTimeout = TimeSpan.FromSeconds(30);

    public required RayAddress Address { get; init; }

    /// <summary>TLS as Ray's client configures it (<c>RAY_USE_TLS</c>, <c>RAY_TLS_*</c>, or the options).</summary>
    public required RayTlsSettings Tls { get; init; }

    public bool UseTls => Tls.Enabled;

    /// <summary>Whether a token is sent (Ray's token authentication), so a refusal can say which setting to fix.</summary>
    public required bool SendsToken { get; init; }

    /// <summary><c>RAY_grpc_enable_http_proxy</c>: .NET honours system proxies by default, Ray's gRPC does not (spec §2.2).</summary>
    public required bool UseProxy { get; init; }

    public required string? Namespace { get; init; }

    public required RuntimeEnv? RuntimeEnv { get; init; }

    public required TimeSpan GracePeriod { get; init; }

    public required int ConnectionRetries { get; init; }

    public required TimeSpan ConnectTimeout { get; init; }

    /// <summary>How long connecting keeps trying to reach the server before it gives up.</summary>
    public required TimeSpan ConnectDeadline { get; init; }

    public required TimeSpan KeepAlivePingDelay { get; init; }

    public required TimeSpan KeepAlivePingTimeout { get; init; }

    public required bool IgnoreVersionMismatch { get; init; }

    /// <summary>User metadata pairs, then <c>authorization</c> when a token is set; <c>client_id</c> is added per connection.</summary>
    public required IReadOnlyList<KeyValuePair<string, string>> Metadata { get; init; }

    public required TimeProvider TimeProvider { get; init; }

    public required ILogger Logger { get; init; }

    public required Action<RayLogLine>? LogSink { get; init; }

    public required IProgress<RayClient.Packaging.UploadProgress>? UploadProgress { get; init; }

    /// <summary>Validates <paramref name="options"/> and resolves it against the environment.</summary>
    /// <param name="options">The user's options.</param>
    /// <param name="environment">Reads an environment variable; default <see cref="Environment.GetEnvironmentVariable(string)"/>.</param>
    public static ConnectionSettings Resolve(RaySessionOptions options, Func<string, string?>? environment = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var env = environment ?? Environment.GetEnvironmentVariable;

        var runtimeEnv = options.RuntimeEnv;
        var envJson = env("RAY_RUNTIME_ENV");
        if (runtimeEnv is null && !string.IsNullOrWhiteSpace(envJson))
        {
            runtimeEnv = RuntimeEnv.FromJson(envJson);
        }

        var metadata = new List<KeyValuePair<string, string>>(options.Metadata);
        var token = options.AuthToken ?? RayAuthToken.FromEnvironment(includeDefaultFile: RayAuthToken.IsTokenModeEnabled(env), env);
        if (token is not null)
        {
            metadata.Add(new(RayAuthToken.HeaderName, $"Bearer {token}"));
        }

        return new ConnectionSettings
        {
            Address = RayAddress.Parse(string.IsNullOrWhiteSpace(options.Address) ? env("RAY_ADDRESS") : options.Address),
            Tls = RayTlsSettings.Resolve(options, env),
            SendsToken = token is not null,
            UseProxy = IsTrue(env("RAY_grpc_enable_http_proxy")),
            Namespace = options.Namespace ?? NullIfEmpty(env("RAY_NAMESPACE")),
            RuntimeEnv = runtimeEnv,
            GracePeriod = ResolveGracePeriod(options.ReconnectGracePeriod, env("RAY_CLIENT_RECONNECT_GRACE_PERIOD")),
            ConnectionRetries = options.ConnectionRetries,
            ConnectTimeout = options.ConnectTimeout,
            ConnectDeadline = options.ConnectDeadline ?? RayConnectPatience(options.ConnectionRetries, options.ConnectTimeout),
            KeepAlivePingDelay = options.KeepAlivePingDelay,
            KeepAlivePingTimeout = options.KeepAlivePingTimeout,
            IgnoreVersionMismatch = options.IgnoreVersionMismatch || env("RAY_IGNORE_VERSION_MISMATCH") is not null,
            Metadata = metadata.AsReadOnly(),
            TimeProvider = options.TimeProvider,
            Logger = options.LoggerFactory?.CreateLogger("RayClient") ?? NullLogger.Instance,
            LogSink = options.LogSink,
            UploadProgress = options.UploadProgress,
        };
    }

    /// <summary>
    /// How long Ray's client tries to reach a server: <c>connection_retries</c> attempts, the first
    /// allowed <c>INITIAL_TIMEOUT_SEC</c> (5 s), each later one 5 s more, at most 30 s
    /// (<c>worker.py :: _connect_channel</c>); 5 + 10 + 15 = 30 s with Ray's defaults.
    /// </summary>
    internal static TimeSpan RayConnectPatience(int attempts, TimeSpan firstAttempt)
    {
        var total = TimeSpan.Zero;
        for (var i = 0; i < attempts; i++)
        {
            total += AttemptTimeout(firstAttempt, i);
        }

        return total;
    }

    /// <summary>Ray's window for attempt <paramref name="index"/> (0-based): the first timeout plus 5 s per attempt, at most 30 s.</summary>
    internal static TimeSpan AttemptTimeout(TimeSpan firstAttempt, int index)
    {
        if (index == 0)
        {
            return firstAttempt;
        }

        var grown = firstAttempt + (ConnectTimeoutStep * Math.Min(index, 6));
        return grown < MaxConnectTimeout ? grown : MaxConnectTimeout;
    }

    private static TimeSpan ResolveGracePeriod(TimeSpan? explicitValue, string? env)
    {
        if (explicitValue is { } value)
        {
            return value;
        }

        if (!string.IsNullOrWhiteSpace(env))
        {
            if (!int.TryParse(env, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var seconds) || seconds < 0)
            {
                throw new ArgumentException($"RAY_CLIENT_RECONNECT_GRACE_PERIOD='{env}' is not a whole number of seconds (0 disables reconnects).");
            }

            return TimeSpan.FromSeconds(seconds);
        }

        return TimeSpan.FromSeconds(30); // Ray's DEFAULT_CLIENT_RECONNECT_GRACE_PERIOD
    }

    private static bool IsTrue(string? value) => value is not null && (value == "1" || value.Equals("true", StringComparison.OrdinalIgnoreCase));

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
