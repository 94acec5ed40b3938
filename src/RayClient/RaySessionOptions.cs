using Microsoft.Extensions.Logging;

namespace RayClient;

/// <summary>Settings of a <see cref="RaySession"/>. Validated once, when the session connects.</summary>
public sealed class RaySessionOptions
{
    /// <summary>
    /// The server, <c>ray://host[:port]</c>. Default: null, meaning the environment variable <c>RAY_ADDRESS</c>.
    /// </summary>
    public string? Address { get; set; }

    /// <summary>Namespace of the job (named actors live in it). Default: null, <c>RAY_NAMESPACE</c> or an anonymous namespace.</summary>
    public string? Namespace { get; set; }

    /// <summary>Runtime environment of the job. Default: null, or the JSON in <c>RAY_RUNTIME_ENV</c>.</summary>
    public RuntimeEnv? RuntimeEnv { get; set; }

    /// <summary>
    /// How long a broken connection may be resumed before the session is declared lost.
    /// Default: null, meaning <c>RAY_CLIENT_RECONNECT_GRACE_PERIOD</c> (seconds) or Ray's default of 30 seconds.
    /// <see cref="TimeSpan.Zero"/> disables reconnects.
    /// </summary>
    public TimeSpan? ReconnectGracePeriod { get; set; }

    /// <summary>
    /// Ray's <c>connection_retries</c>: with <see cref="ConnectTimeout"/> it sets how long connecting
    /// keeps trying when <see cref="ConnectDeadline"/> is not set, as Ray's client does: attempt
    /// windows of 5 s, 10 s and 15 s (each 5 s longer than the one before, at most 30 s) add up to
    /// 30 s. Default: 3.
    /// </summary>
    public int ConnectionRetries { get; set; } = 3;

    /// <summary>
    /// Time allowed for the first attempt to reach the server (a PING); each attempt that times out
    /// allows 5 s more, at most 30 s, as in Ray (<c>INITIAL_TIMEOUT_SEC</c>). Default: 5 seconds.
    /// </summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long connecting keeps trying to reach a server that refuses or does not answer (one that
    /// is still starting, say) before <see cref="RaySession.ConnectAsync(RaySessionOptions, CancellationToken)"/>
    /// gives up with a transient <see cref="RayConnectionException"/>. Attempts are retried with
    /// jittered exponential backoff (0.25 s doubling up to 2 s), so a server that becomes ready is
    /// found within about 2 s. Errors that retrying cannot fix (not a Ray server, bad credentials,
    /// an unknown host) fail at once. Initializing the job afterwards (runtime env set-up, which may
    /// take minutes on a cluster) is not bounded by it, as in Ray.
    /// Default: null, meaning Ray's patience: the sum of the <see cref="ConnectionRetries"/> attempt
    /// windows starting at <see cref="ConnectTimeout"/> (30 s with the defaults).
    /// </summary>
    public TimeSpan? ConnectDeadline { get; set; }

    /// <summary>
    /// Interval of HTTP/2 keepalive pings that detect a dead peer. Default: 5 seconds (Ray uses
    /// 30 s; shorter so that a silently dead connection is noticed within about 10 s; Ray's
    /// server accepts pings at any rate, <c>max_ping_strikes = 0</c>).
    /// </summary>
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a keepalive ping may stay unanswered before the connection counts as dead. Default: 5 seconds.</summary>
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Connect even when the server's Ray version is outside <see cref="RayVersions.SupportedRange"/>.
    /// Default: false, or true when the environment variable <c>RAY_IGNORE_VERSION_MISMATCH</c> is set (as in Ray).
    /// </summary>
    public bool IgnoreVersionMismatch { get; set; }

    /// <summary>Extra gRPC metadata sent on every call (e.g. a proxy's bearer token). Default: none.</summary>
    public IList<KeyValuePair<string, string>> Metadata { get; } = new List<KeyValuePair<string, string>>();

    /// <summary>
    /// Token for clusters with Ray's token authentication (Ray 2.52+, sent as <c>authorization: Bearer &lt;token&gt;</c>).
    /// Default: null, meaning where Ray looks: <c>RAY_AUTH_TOKEN</c>, else the file named by <c>RAY_AUTH_TOKEN_PATH</c>,
    /// else (when <c>RAY_AUTH_MODE=token</c>) <c>~/.ray/auth_token</c>; no token when none is set.
    /// </summary>
    public string? AuthToken { get; set; }

    /// <summary>
    /// Use TLS. Default: false, or true when <c>RAY_USE_TLS</c> is 1/true (as Ray's client); setting
    /// <see cref="TlsCaCertificateFile"/> or <see cref="TlsCertificateFile"/> also turns it on.
    /// </summary>
    public bool UseTls { get; set; }

    /// <summary>
    /// PEM file of the CA certificate(s) that signed the server's certificate; only they are trusted
    /// (a cluster with a private CA). Default: null, meaning <c>RAY_TLS_CA_CERT</c> when <c>RAY_USE_TLS</c> is set,
    /// else the system trust store.
    /// </summary>
    public string? TlsCaCertificateFile { get; set; }

    /// <summary>
    /// PEM certificate (chain) this client presents to a server that requires mutual TLS, with <see cref="TlsKeyFile"/>.
    /// Default: null, meaning <c>RAY_TLS_SERVER_CERT</c> when <c>RAY_USE_TLS</c> is set (Ray's client presents that certificate).
    /// </summary>
    public string? TlsCertificateFile { get; set; }

    /// <summary>PEM private key of <see cref="TlsCertificateFile"/>. Default: null, meaning <c>RAY_TLS_SERVER_KEY</c> when <c>RAY_USE_TLS</c> is set.</summary>
    public string? TlsKeyFile { get; set; }

    /// <summary>
    /// Progress of runtime-env package uploads (hashing, zipping, uploading each local
    /// working_dir/py_modules path). Default: none. Cancel a slow upload with the token of ConnectAsync.
    /// </summary>
    public IProgress<RayClient.Packaging.UploadProgress>? UploadProgress { get; set; }

    /// <summary>Logger for connection events. Default: none.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Clock used for deadlines and timestamps. Default: <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Receives the job's stdout/stderr and log lines forwarded by the server. Default: null (Console).</summary>
    public Action<RayLogLine>? LogSink { get; set; }

    internal void Validate()
    {
        if (ConnectionRetries < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(ConnectionRetries), ConnectionRetries, "At least one connection attempt is needed.");
        }

        if (ConnectTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ConnectTimeout), ConnectTimeout, "The connect timeout must be positive.");
        }

        if (ConnectDeadline is { } deadline && deadline <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ConnectDeadline), deadline, "The connect deadline must be positive.");
        }

        if (ReconnectGracePeriod is { } grace && (grace < TimeSpan.Zero || grace.TotalSeconds > int.MaxValue))
        {
            throw new ArgumentOutOfRangeException(nameof(ReconnectGracePeriod), grace, "The grace period must be zero (no reconnects) or positive.");
        }

        if (KeepAlivePingDelay <= TimeSpan.Zero || KeepAlivePingTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(KeepAlivePingDelay), "Keepalive intervals must be positive.");
        }
    }
}

/// <summary>One line of output forwarded from the cluster (a worker's stdout/stderr, or a server log record).</summary>
/// <param name="Message">The text, as sent by the server.</param>
/// <param name="Level">-1 stdout, -2 stderr, otherwise a Python logging level (10 DEBUG … 50 CRITICAL).</param>
/// <param name="Source">Logger or stream name.</param>
public sealed record RayLogLine(string Message, int Level, string Source);
