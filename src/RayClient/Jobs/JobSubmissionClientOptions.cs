using Microsoft.Extensions.Logging;

namespace RayClient.Jobs;

/// <summary>
/// Configures a <see cref="JobSubmissionClient"/> (the arguments of Ray's
/// <c>JobSubmissionClient(address, cookies, metadata, headers, verify)</c>, plus .NET's transport
/// hooks). Validated once, when the client is created.
/// </summary>
public sealed class JobSubmissionClientOptions
{
    /// <summary>
    /// The dashboard's URL, e.g. <c>http://head-node:8265</c>. As in Ray, <c>RAY_API_SERVER_ADDRESS</c>
    /// and then an HTTP <c>RAY_ADDRESS</c> override it. A <c>ray://</c> address is refused (the Jobs
    /// API is on the dashboard port). Default: null, the environment or <c>http://127.0.0.1:8265</c>.
    /// </summary>
    public string? Address { get; set; }

    /// <summary>Headers sent with every request and the log WebSocket's handshake (e.g. a proxy's auth). Default: none.</summary>
    public IDictionary<string, string>? Headers { get; set; }

    /// <summary>Cookies sent with every request and the log WebSocket's handshake. Default: none.</summary>
    public IDictionary<string, string>? Cookies { get; set; }

    /// <summary>Metadata merged into every job's metadata, over the job's own keys (as Ray does). Default: none.</summary>
    public IDictionary<string, string>? Metadata { get; set; }

    /// <summary>
    /// The cluster's authentication token (Ray's token auth), sent as <c>Authorization: Bearer …</c>
    /// unless <see cref="Headers"/> has an Authorization header. Never logged. Default: null, then
    /// <c>RAY_AUTH_TOKEN</c>, the file named by <c>RAY_AUTH_TOKEN_PATH</c>, and, when
    /// <c>RAY_AUTH_MODE=token</c>, <c>~/.ray/auth_token</c>.
    /// </summary>
    public string? Token { get; set; }

    /// <summary>Send the token as <c>X-Ray-Authorization</c> (for proxies that use <c>Authorization</c> themselves). Default: false.</summary>
    public bool UseXRayAuthorizationHeader { get; set; }

    /// <summary>Verify the server's TLS certificate (Ray's <c>verify=True</c>). Default: true.</summary>
    public bool VerifyTls { get; set; } = true;

    /// <summary>
    /// A PEM file or a directory of PEM files with the CA certificates to trust instead of the
    /// system's (Ray's <c>verify="/path"</c>); a path that does not exist is an error. Default: null.
    /// </summary>
    public string? CaCertificatesPath { get; set; }

    /// <summary>
    /// The handler HTTP requests and the log WebSocket go through, e.g. to add your own delegating
    /// handlers (as <c>GrpcChannelOptions.HttpHandler</c>). Not disposed by the client. TLS options
    /// are then the handler's own. Default: null, a <see cref="SocketsHttpHandler"/> the client owns.
    /// </summary>
    public HttpMessageHandler? HttpHandler { get; set; }

    /// <summary>
    /// An <see cref="System.Net.Http.HttpClient"/> to send requests with; not disposed by the client.
    /// Its <c>Timeout</c> still applies, on top of <see cref="RequestTimeout"/>. Default: null.
    /// </summary>
    public HttpClient? HttpClient { get; set; }

    /// <summary>Deadline of one attempt of a request (upload excepted). Default: 30 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Deadline of one attempt of a package upload. Default: 10 minutes.</summary>
    public TimeSpan UploadTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Retries of transient failures. Default: <see cref="JobsRetryPolicy.Default"/>.</summary>
    public JobsRetryPolicy RetryPolicy { get; set; } = JobsRetryPolicy.Default;

    /// <summary>How often <see cref="JobSubmissionClient.WaitUntilStatusAsync"/> polls (Ray's CLI polls every second). Default: 1 s.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The User-Agent header. It must not start with <c>Mozilla</c>: Ray refuses POST and PUT from
    /// browsers with 405. Default: <c>RayClient.Jobs/&lt;version&gt; (.NET)</c>.
    /// </summary>
    public string? UserAgent { get; set; }

    /// <summary>Logger for retries and address warnings; never receives tokens, headers or payloads. Default: none.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Clock for retry delays, deadlines and polling. Default: <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Reads environment variables (tests substitute it). Default: <see cref="Environment.GetEnvironmentVariable(string)"/>.</summary>
    internal Func<string, string?> GetEnvironmentVariable { get; set; } = Environment.GetEnvironmentVariable;
}
