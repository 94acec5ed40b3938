using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Reflection;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;
using Polly.Retry;
using RayClient.Packaging;

namespace RayClient.Jobs;

/// <summary>
/// Submits and manages Ray jobs through a cluster's Jobs REST API (the dashboard, port 8265), as
/// Ray's Python <c>JobSubmissionClient</c> does (ray:python/ray/dashboard/modules/job/sdk.py), over
/// <see cref="HttpClient"/>. Thread-safe; create one per cluster and dispose it.
/// </summary>
/// <remarks>
/// The first call checks <c>/api/version</c> (Ray 2.0 or newer). Transient failures are retried
/// within <see cref="JobSubmissionClientOptions.RetryPolicy"/>; every attempt has a deadline.
/// Errors are <see cref="RayJobsException"/> subclasses carrying the HTTP status and the server's
/// text, <see cref="RayConnectionException"/> when the server cannot be reached, and
/// <see cref="RayRuntimeEnvException"/> for a runtime env that is invalid or cannot be uploaded.
/// </remarks>
public sealed partial class JobSubmissionClient : IDisposable, IAsyncDisposable
{
    /// <summary>The dashboard's body limit (<c>DASHBOARD_CLIENT_MAX_SIZE</c>): the real package size limit of the Jobs path.</summary>
    internal const long MaxPackageSizeBytes = 100L * 1024 * 1024;

    private static readonly Version s_minimumRay = new(2, 0, 0);
    private static readonly Version s_entrypointResourcesRay = new(2, 2, 0);
    private static readonly Version s_entrypointMemoryRay = new(2, 8, 0);

    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly HttpMessageHandler? _handler;
    private readonly bool _ownsHandler;
    private readonly JobSubmissionClientOptions _options;
    private readonly string _base;
    private readonly List<KeyValuePair<string, string>> _headers;
    private readonly Dictionary<string, string> _defaultMetadata;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly JobsRetryPolicy _retry;
    private readonly HttpPackageStore _packageStore;
    private readonly UploadOptions _uploadOptions;
    private readonly object _versionLock = new();
    private Task<JobsApiVersion>? _version;
    private int _disposed;

    /// <summary>Creates a client for the dashboard at <paramref name="address"/> (or the environment's, or <c>http://127.0.0.1:8265</c>).</summary>
    /// <exception cref="ArgumentException">The address is a <c>ray://</c> address or malformed.</exception>
    public JobSubmissionClient(string? address = null)
        : this(new JobSubmissionClientOptions { Address = address })
    {
    }

    /// <summary>Creates a client for the dashboard at <paramref name="address"/> that sends through <paramref name="httpClient"/> (not disposed by the client).</summary>
    public JobSubmissionClient(string? address, HttpClient httpClient)
        : this(new JobSubmissionClientOptions { Address = address, HttpClient = httpClient ?? throw new ArgumentNullException(nameof(httpClient)) })
    {
    }

    /// <summary>Creates a client from <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">The options are invalid; the message names the option.</exception>
    /// <exception cref="FileNotFoundException"><see cref="JobSubmissionClientOptions.CaCertificatesPath"/> does not exist.</exception>
    public JobSubmissionClient(JobSubmissionClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _time = options.TimeProvider ?? throw new ArgumentException("TimeProvider must not be null.", nameof(options));
        _retry = options.RetryPolicy ?? throw new ArgumentException("RetryPolicy must not be null.", nameof(options));
        _retry.Validate();
        if (options.RequestTimeout <= TimeSpan.Zero || options.UploadTimeout <= TimeSpan.Zero || options.PollInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException("RequestTimeout, UploadTimeout and PollInterval must be positive.", nameof(options));
        }

        var userAgent = options.UserAgent ?? DefaultUserAgent;
        if (userAgent.StartsWith("Mozilla", StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException("A User-Agent starting with 'Mozilla' is refused by Ray for POST and PUT (browser traffic).", nameof(options));
        }

        _logger = options.LoggerFactory?.CreateLogger("RayClient.Jobs") ?? NullLogger.Instance;
        var env = options.GetEnvironmentVariable;
        var resolution = JobsAddress.Resolve(options.Address, env);
        if (resolution.Warning is not null)
        {
            JobsLog.AddressWarning(_logger, resolution.Warning);
        }

        _base = resolution.BaseUri.GetLeftPart(UriPartial.Path).TrimEnd('/');
        Address = new Uri(_base);
        _headers = BuildHeaders(options, userAgent, env);
        _defaultMetadata = options.Metadata is null ? [] : new Dictionary<string, string>(options.Metadata, StringComparer.Ordinal);

        if ((options.HttpClient is not null || options.HttpHandler is not null) && (!options.VerifyTls || options.CaCertificatesPath is not null))
        {
            throw new ArgumentException("VerifyTls and CaCertificatesPath apply to the client's own handler; configure TLS on the HttpClient or HttpHandler you pass instead.", nameof(options));
        }

        if (options.HttpClient is not null)
        {
            _http = options.HttpClient;
            _handler = options.HttpHandler;
        }
        else
        {
            _handler = options.HttpHandler;
            if (_handler is null)
            {
                _handler = CreateHandler(options);
                _ownsHandler = true;
            }

            _http = new HttpClient(_handler, disposeHandler: false) { Timeout = Timeout.InfiniteTimeSpan };
            _ownsHttp = true;
        }

        _packageStore = new HttpPackageStore(this);
        // The existence check pins (no separate pin), and the dashboard's 100 MiB body limit is
        // the real package limit here, whatever the GCS would store.
        _uploadOptions = new UploadOptions(env)
        {
            PinExpirationSeconds = 0,
            Logger = _logger,
            Packaging = PackagingOptions.FromEnvironment(env) with { MaxPackageSizeBytes = MaxPackageSizeBytes },
        };
    }

    /// <summary>The base URL requests go to (no trailing slash), e.g. <c>http://127.0.0.1:8265</c>.</summary>
    public Uri Address { get; }

    /// <summary>The default User-Agent: <c>RayClient.Jobs/&lt;version&gt; (.NET)</c>.</summary>
    public static string DefaultUserAgent { get; } =
        $"RayClient.Jobs/{typeof(JobSubmissionClient).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0"} (.NET)";

    /// <summary>The server's <c>/api/version</c> answer (Ray's <c>get_version</c> returns its <see cref="JobsApiVersion.Version"/>).</summary>
    public Task<JobsApiVersion> GetVersionAsync(CancellationToken cancellationToken = default) => EnsureVersionAsync(cancellationToken);

    /// <summary>
    /// Submits a job and returns its submission id. Local <c>working_dir</c>/<c>py_modules</c>
    /// directories are zipped and hashed as Ray does and uploaded once (skipped when the cluster
    /// has them); <paramref name="progress"/> sees each package's stages.
    /// </summary>
    /// <exception cref="RayJobAlreadyExistsException">The submission id is taken.</exception>
    /// <exception cref="RayJobsServerTooOldException">An entrypoint resource needs a newer Ray.</exception>
    /// <exception cref="RayRuntimeEnvException">The runtime env is invalid, or a package is too large or failed to upload.</exception>
    public async Task<string> SubmitJobAsync(JobSubmission submission, IProgress<UploadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(submission);
        ThrowIfDisposed();

        // Fixed before the first attempt, so a retry can only ever find this job, never start another.
        var submissionId = string.IsNullOrEmpty(submission.SubmissionId) ? SubmissionIds.Generate() : submission.SubmissionId;
        SubmissionIds.Validate(submissionId);
        ValidateResources(submission);

        var version = await EnsureVersionAsync(cancellationToken).ConfigureAwait(false);
        if (submission.EntrypointNumCpus is > 0 || submission.EntrypointNumGpus is > 0 || submission.EntrypointResources is { Count: > 0 })
        {
            RequireRay(version, s_entrypointResourcesRay, "entrypoint_num_cpus, entrypoint_num_gpus and entrypoint_resources");
        }

        if (submission.EntrypointMemory is > 0)
        {
            RequireRay(version, s_entrypointMemoryRay, "entrypoint_memory");
        }

        JsonObject runtimeEnv;
        if (submission.RuntimeEnv is null)
        {
            runtimeEnv = [];
        }
        else
        {
            var uploaded = await RuntimeEnvUploader.UploadLocalPackagesAsync(submission.RuntimeEnv, _packageStore, _uploadOptions, progress, cancellationToken)
                .ConfigureAwait(false);
            runtimeEnv = uploaded.ToJsonObject();
        }

        // Ray: the client's default metadata is applied last, over the job's keys.
        var metadata = submission.Metadata is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(submission.Metadata, StringComparer.Ordinal);
        foreach (var (key, value) in _defaultMetadata)
        {
            metadata[key] = value;
        }

        var request = new JobSubmitRequestJson
        {
            Entrypoint = submission.Entrypoint,
            SubmissionId = submissionId,
            RuntimeEnv = runtimeEnv,
            Metadata = metadata,
            EntrypointNumCpus = submission.EntrypointNumCpus,
            EntrypointNumGpus = submission.EntrypointNumGpus,
            EntrypointMemory = submission.EntrypointMemory,
            EntrypointResources = submission.EntrypointResources is null ? null : new Dictionary<string, double>(submission.EntrypointResources, StringComparer.Ordinal),
        };
        var body = JsonSerializer.SerializeToUtf8Bytes(request, JobsJsonContext.Default.JobSubmitRequestJson);

        var attempts = 0;
        using var response = await SendAsync(
            HttpMethod.Post,
            "/api/jobs/",
            () => JsonContent(body),
            _options.RequestTimeout,
            () => attempts++,
            cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.OK)
        {
            var answer = await ReadJsonAsync(response, JobsJsonContext.Default.JobSubmitResponseJson, "submit job", cancellationToken).ConfigureAwait(false);
            var id = answer.SubmissionId ?? answer.JobId ?? submissionId;
            JobsLog.JobSubmitted(_logger, id);
            return id;
        }

        var error = await ErrorAsync(response, "submit job", submissionId, isSubmit: true, cancellationToken).ConfigureAwait(false);
        if (error is RayJobAlreadyExistsException && attempts > 1)
        {
            // An earlier attempt reached the server and its answer was lost: the job is ours if it
            // runs the same entrypoint (the id was generated or given for this very submit).
            var existing = await GetJobInfoAsync(submissionId, cancellationToken).ConfigureAwait(false);
            if (string.Equals(existing.Entrypoint, submission.Entrypoint, StringComparison.Ordinal))
            {
                JobsLog.SubmitRetryFoundJob(_logger, submissionId);
                return submissionId;
            }
        }

        throw error;
    }

    /// <summary>The job's details (status, message, times, metadata, runtime env, driver).</summary>
    /// <param name="jobId">A submission id or a driver's Ray JobID.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <exception cref="RayJobNotFoundException">No such job.</exception>
    public async Task<JobDetails> GetJobInfoAsync(string jobId, CancellationToken cancellationToken = default)
    {
        var path = JobPath(jobId);
        await EnsureVersionAsync(cancellationToken).ConfigureAwait(false);
        using var response = await SendAsync(HttpMethod.Get, path, null, _options.RequestTimeout, null, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, "get job info", jobId, cancellationToken).ConfigureAwait(false);
        return await ReadJsonAsync(response, JobsJsonContext.Default.JobDetails, "get job info", cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The job's status (from its details, as Ray's <c>get_job_status</c>).</summary>
    /// <exception cref="RayJobNotFoundException">No such job.</exception>
    public async Task<JobStatus> GetJobStatusAsync(string jobId, CancellationToken cancellationToken = default) =>
        (await GetJobInfoAsync(jobId, cancellationToken).ConfigureAwait(false)).Status;

    /// <summary>Every job the cluster knows: submitted jobs first, then other drivers (Ray's order; no paging).</summary>
    public async Task<IReadOnlyList<JobDetails>> ListJobsAsync(CancellationToken cancellationToken = default)
    {
        await EnsureVersionAsync(cancellationToken).ConfigureAwait(false);
        using var response = await SendAsync(HttpMethod.Get, "/api/jobs/", null, _options.RequestTimeout, null, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, "list jobs", null, cancellationToken).ConfigureAwait(false);
        return await ReadJsonAsync(response, JobsJsonContext.Default.ListJobDetails, "list jobs", cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The job's whole log so far (empty before the entrypoint starts).</summary>
    /// <exception cref="RayJobNotFoundException">No such job.</exception>
    public async Task<string> GetJobLogsAsync(string jobId, CancellationToken cancellationToken = default)
    {
        var path = JobPath(jobId) + "/logs";
        await EnsureVersionAsync(cancellationToken).ConfigureAwait(false);
        using var response = await SendAsync(HttpMethod.Get, path, null, _options.RequestTimeout, null, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, "get job logs", jobId, cancellationToken).ConfigureAwait(false);
        return (await ReadJsonAsync(response, JobsJsonContext.Default.JobLogsResponseJson, "get job logs", cancellationToken).ConfigureAwait(false)).Logs;
    }

    /// <summary>
    /// Asks the job to stop (TERM, then KILL after the cluster's grace period) and returns at once:
    /// true if it was running, false if it had already finished. Poll with
    /// <see cref="WaitUntilStatusAsync"/> to see it end.
    /// </summary>
    /// <exception cref="RayJobNotFoundException">No such job.</exception>
    public async Task<bool> StopJobAsync(string jobId, CancellationToken cancellationToken = default)
    {
        var path = JobPath(jobId) + "/stop";
        await EnsureVersionAsync(cancellationToken).ConfigureAwait(false);
        using var response = await SendAsync(HttpMethod.Post, path, null, _options.RequestTimeout, null, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, "stop job", jobId, cancellationToken).ConfigureAwait(false);
        return (await ReadJsonAsync(response, JobsJsonContext.Default.JobStopResponseJson, "stop job", cancellationToken).ConfigureAwait(false)).Stopped;
    }

    /// <summary>Deletes a finished job's record (not its log file). A job that has not finished is refused.</summary>
    /// <exception cref="RayJobNotFoundException">No such job.</exception>
    /// <exception cref="RayJobsException">The job has not finished (Ray answers 500 "… is in a non-terminal state …").</exception>
    public async Task<bool> DeleteJobAsync(string jobId, CancellationToken cancellationToken = default)
    {
        var path = JobPath(jobId);
        await EnsureVersionAsync(cancellationToken).ConfigureAwait(false);
        var attempts = 0;
        using var response = await SendAsync(HttpMethod.Delete, path, null, _options.RequestTimeout, () => attempts++, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound && attempts > 1)
        {
            // An earlier attempt deleted it and its answer was lost.
            return true;
        }

        await EnsureSuccessAsync(response, "delete job", jobId, cancellationToken).ConfigureAwait(false);
        return (await ReadJsonAsync(response, JobsJsonContext.Default.JobDeleteResponseJson, "delete job", cancellationToken).ConfigureAwait(false)).Deleted;
    }

    /// <summary>
    /// Polls the job every <see cref="JobSubmissionClientOptions.PollInterval"/> until its status is
    /// one of <paramref name="statuses"/> (default: any terminal status) and returns its details.
    /// </summary>
    /// <param name="jobId">The submission id (or driver JobID).</param>
    /// <param name="statuses">The statuses to wait for; null or empty means STOPPED, SUCCEEDED or FAILED.</param>
    /// <param name="timeout">How long to wait at most; null waits until <paramref name="cancellationToken"/> fires.</param>
    /// <param name="cancellationToken">Cancels the wait (the job is not touched).</param>
    /// <exception cref="RayTimeoutException">The timeout passed first; the message gives the last status.</exception>
    /// <exception cref="RayJobNotFoundException">No such job.</exception>
    public async Task<JobDetails> WaitUntilStatusAsync(string jobId, IReadOnlyCollection<JobStatus>? statuses = null, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        if (timeout is { } t && t < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "Must not be negative.");
        }

        var start = _time.GetTimestamp();
        while (true)
        {
            var info = await GetJobInfoAsync(jobId, cancellationToken).ConfigureAwait(false);
            if (statuses is null || statuses.Count == 0 ? info.Status.IsTerminal() : statuses.Contains(info.Status))
            {
                return info;
            }

            var delay = _options.PollInterval;
            if (timeout is { } limit)
            {
                var left = limit - _time.GetElapsedTime(start);
                if (left <= TimeSpan.Zero)
                {
                    throw new RayTimeoutException(
                        $"Job '{jobId}' did not reach {(statuses is null || statuses.Count == 0 ? "a terminal status" : string.Join(" or ", statuses.Select(s => s.ToWireName())))} within {limit.TotalSeconds:0.###} s; its status is {info.Status.ToWireName()}.");
                }

                delay = left < delay ? left : delay;
            }

            await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_ownsHttp)
        {
            _http.Dispose();
        }

        if (_ownsHandler)
        {
            _handler?.Dispose();
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    internal async Task<bool> PackageExistsAsync(string path, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Get, path, null, _options.RequestTimeout, null, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.OK)
        {
            return true;
        }

        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }

        throw await ErrorAsync(response, "check for a package", null, isSubmit: false, cancellationToken).ConfigureAwait(false);
    }

    internal async Task UploadPackageAsync(string path, ReadOnlyMemory<byte> zip, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(
            HttpMethod.Put,
            path,
            () => new ReadOnlyMemoryContent(zip),
            _options.UploadTimeout,
            null,
            cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, "upload a package", null, cancellationToken).ConfigureAwait(false);
    }

    private static string JobPath(string jobId)
    {
        ArgumentException.ThrowIfNullOrEmpty(jobId);
        return "/api/jobs/" + Uri.EscapeDataString(jobId);
    }

    private static void RequireRay(JobsApiVersion version, Version minimum, string feature)
    {
        var (parsed, _) = ParseVersion(version.RayVersion);
        if (parsed < minimum)
        {
            throw new RayJobsServerTooOldException(
                $"{feature} {(feature.Contains(',', StringComparison.Ordinal) ? "are" : "is")} not supported by the Ray cluster (Ray {version.RayVersion}). Please ensure the cluster is running Ray {minimum.ToString(2)} or higher.",
                version.RayVersion,
                minimum.ToString(3));
        }
    }

    private static (Version Version, bool IsDevelopment) ParseVersion(string text)
    {
        try
        {
            return RayVersions.ParseRayVersion(text);
        }
        catch (FormatException)
        {
            return (new Version(0, 0), false);
        }
        catch (ArgumentException)
        {
            return (new Version(0, 0), false);
        }
    }

    private static void ValidateResources(JobSubmission submission)
    {
        if (submission.EntrypointNumCpus is < 0 || submission.EntrypointNumGpus is < 0 || submission.EntrypointMemory is < 0)
        {
            throw new ArgumentException("Entrypoint CPUs, GPUs and memory must not be negative.", nameof(submission));
        }

        if (submission.EntrypointResources is not null)
        {
            foreach (var (name, amount) in submission.EntrypointResources)
            {
                if (string.IsNullOrEmpty(name) || amount < 0 || double.IsNaN(amount) || double.IsInfinity(amount))
                {
                    throw new ArgumentException($"Entrypoint resource '{name}' = {amount.ToString(CultureInfo.InvariantCulture)}: names must be non-empty and amounts finite and not negative.", nameof(submission));
                }
            }
        }

        foreach (var value in new[] { submission.EntrypointNumCpus, submission.EntrypointNumGpus })
        {
            if (value is { } v && (double.IsNaN(v) || double.IsInfinity(v)))
            {
                throw new ArgumentException("Entrypoint CPUs and GPUs must be finite numbers.", nameof(submission));
            }
        }
    }

    private static ByteArrayContent JsonContent(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    private static List<KeyValuePair<string, string>> BuildHeaders(JobSubmissionClientOptions options, string userAgent, Func<string, string?> env)
    {
        var headers = new List<KeyValuePair<string, string>> { new("User-Agent", userAgent) };
        var hasAuthorization = false;
        if (options.Headers is not null)
        {
            foreach (var (name, value) in options.Headers)
            {
                if (string.IsNullOrWhiteSpace(name) || value is null)
                {
                    throw new ArgumentException("Header names must be non-empty and values non-null.", nameof(options));
                }

                if (name.Equals("User-Agent", StringComparison.OrdinalIgnoreCase))
                {
                    headers[0] = new(name, value);
                    continue;
                }

                hasAuthorization |= name.Equals("Authorization", StringComparison.OrdinalIgnoreCase)
                    || name.Equals("X-Ray-Authorization", StringComparison.OrdinalIgnoreCase);
                headers.Add(new(name, value));
            }
        }

        var token = options.Token ?? ReadToken(env);
        if (!hasAuthorization && !string.IsNullOrWhiteSpace(token))
        {
            headers.Add(new(options.UseXRayAuthorizationHeader ? "X-Ray-Authorization" : "Authorization", "Bearer " + token.Trim()));
        }

        if (options.Cookies is { Count: > 0 })
        {
            headers.Add(new("Cookie", string.Join("; ", options.Cookies.Select(c => $"{c.Key}={c.Value}"))));
        }

        return headers;
    }

    /// <summary>
    /// The token as Ray's loader finds it (ray:python/ray/includes/rpc_token_authentication.pxi):
    /// <c>RAY_AUTH_TOKEN</c>, the file at <c>RAY_AUTH_TOKEN_PATH</c>, and with
    /// <c>RAY_AUTH_MODE=token</c> the default file <c>~/.ray/auth_token</c>.
    /// </summary>
    private static string? ReadToken(Func<string, string?> env)
    {
        var token = env("RAY_AUTH_TOKEN");
        if (!string.IsNullOrWhiteSpace(token))
        {
            return token;
        }

        var path = env("RAY_AUTH_TOKEN_PATH");
        if (!string.IsNullOrWhiteSpace(path))
        {
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"RAY_AUTH_TOKEN_PATH names '{path}', which does not exist.", path);
            }

            return File.ReadAllText(path).Trim();
        }

        if (string.Equals(env("RAY_AUTH_MODE"), "token", StringComparison.OrdinalIgnoreCase))
        {
            var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            var file = Path.Combine(home, ".ray", "auth_token");
            return File.Exists(file) ? File.ReadAllText(file).Trim() : null;
        }

        return null;
    }

    private static SocketsHttpHandler CreateHandler(JobSubmissionClientOptions options)
    {
        var handler = new SocketsHttpHandler
        {
            UseCookies = false,
            AllowAutoRedirect = false,
            ConnectTimeout = options.RequestTimeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            AutomaticDecompression = DecompressionMethods.All,
        };
        if (!options.VerifyTls)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
        }
        else if (options.CaCertificatesPath is { } caPath)
        {
            var roots = LoadCertificates(caPath);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                if (certificate is null || (errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
                {
                    return false;
                }

                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                return chain.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
            };
        }

        return handler;
    }

    private static X509Certificate2Collection LoadCertificates(string path)
    {
        var collection = new X509Certificate2Collection();
        if (File.Exists(path))
        {
            collection.ImportFromPemFile(path);
        }
        else if (Directory.Exists(path))
        {
            foreach (var file in Directory.EnumerateFiles(path))
            {
                try
                {
                    collection.ImportFromPemFile(file);
                }
                catch (CryptographicException)
                {
                    // Not a PEM file (c_rehash directories hold links and other files).
                }
            }
        }
        else
        {
            throw new FileNotFoundException($"Path to CA certificates: '{path}', does not exist.", path);
        }

        if (collection.Count == 0)
        {
            throw new ArgumentException($"No PEM certificates found in '{path}'.", nameof(path));
        }

        return collection;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    private async Task<JobsApiVersion> EnsureVersionAsync(CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        Task<JobsApiVersion> task;
        lock (_versionLock)
        {
            // Shared by concurrent callers; bounded by the retry budget and per-attempt deadlines.
            task = _version ??= CheckVersionAsync();
        }

        try
        {
            return await task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (task.IsFaulted || task.IsCanceled)
        {
            lock (_versionLock)
            {
                if (ReferenceEquals(_version, task))
                {
                    _version = null; // the next call checks again
                }
            }

            throw;
        }
    }

    /// <summary>Ray's <c>_check_connection_and_version</c>: a 404 means no Jobs API; Ray 2.0 or newer is needed.</summary>
    private async Task<JobsApiVersion> CheckVersionAsync()
    {
        using var response = await SendAsync(HttpMethod.Get, "/api/version", null, _options.RequestTimeout, null, CancellationToken.None).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            throw new RayJobsServerTooOldException(
                $"Version check returned 404: {_base} serves no Ray Jobs API. Please ensure it is a Ray dashboard (port 8265) running Ray {s_minimumRay.ToString(2)} or higher.",
                null, s_minimumRay.ToString(3), 404, null);
        }

        await EnsureSuccessAsync(response, "check the Ray version", null, CancellationToken.None).ConfigureAwait(false);
        var version = await ReadJsonAsync(response, JobsJsonContext.Default.JobsApiVersion, "check the Ray version", CancellationToken.None).ConfigureAwait(false);
        if (string.IsNullOrEmpty(version.RayVersion))
        {
            throw new RayJobsException($"{_base}/api/version did not name a ray_version: it is not a Ray dashboard.", 200, null);
        }

        var (parsed, _) = ParseVersion(version.RayVersion);
        if (parsed < s_minimumRay)
        {
            throw new RayJobsServerTooOldException(
                $"Ray version {version.RayVersion} is running on the cluster. Please ensure the cluster is running Ray {s_minimumRay.ToString(2)} or higher.",
                version.RayVersion, s_minimumRay.ToString(3));
        }

        return version;
    }

    private async Task EnsureSuccessAsync(HttpResponseMessage response, string operation, string? jobId, CancellationToken cancellationToken)
    {
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw await ErrorAsync(response, operation, jobId, isSubmit: false, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<RayJobsException> ErrorAsync(HttpResponseMessage response, string operation, string? jobId, bool isSubmit, CancellationToken cancellationToken)
    {
        string? body;
        try
        {
            body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException)
        {
            body = null;
        }

        return JobsErrors.FromResponse((int)response.StatusCode, body, operation, jobId, isSubmit);
    }

    private async Task<T> ReadJsonAsync<T>(HttpResponseMessage response, JsonTypeInfo<T> type, string operation, CancellationToken cancellationToken)
    {
        try
        {
            var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                return await JsonSerializer.DeserializeAsync(stream, type, cancellationToken).ConfigureAwait(false)
                    ?? throw new JsonException("null");
            }
        }
        catch (JsonException e)
        {
            throw new RayJobsException($"{_base} answered the request to {operation} with JSON this client cannot read ({e.Message}); is it a Ray dashboard?", (int)response.StatusCode, null, innerException: e);
        }
    }

    /// <summary>
    /// Sends one request through the retry policy: connection failures, attempts past their
    /// deadline and 502/503/504 are retried while the budget lasts. Non-transient statuses are
    /// returned for the caller to map.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(
        HttpMethod method,
        string path,
        Func<HttpContent>? content,
        TimeSpan attemptTimeout,
        Action? onAttempt,
        CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var start = _time.GetTimestamp();
        var pipeline = BuildPipeline(method, path, start);
        var url = _base + path;
        try
        {
            return await pipeline.ExecuteAsync(
                async token =>
                {
                    onAttempt?.Invoke();
                    using var deadline = new CancellationTokenSource(attemptTimeout, _time);
                    using var linked = CancellationTokenSource.CreateLinkedTokenSource(token, deadline.Token);
                    using var request = new HttpRequestMessage(method, url) { Content = content?.Invoke() };
                    foreach (var (name, value) in _headers)
                    {
                        request.Headers.TryAddWithoutValidation(name, value);
                    }

                    try
                    {
                        return await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, linked.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException e) when (deadline.IsCancellationRequested && !token.IsCancellationRequested)
                    {
                        throw new TimeoutException($"{method} {path} got no answer within {attemptTimeout.TotalSeconds:0.###} s.", e);
                    }
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new RayConnectionException($"Failed to connect to the Ray Jobs API at {_base}: {Reason(e)}.", isTransient: IsTransient(e), e);
        }
        catch (TimeoutException e)
        {
            throw new RayTimeoutException($"The Ray Jobs API at {_base} did not answer: {e.Message}", e);
        }
    }

    private ResiliencePipeline<HttpResponseMessage> BuildPipeline(HttpMethod method, string path, long start)
    {
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = _time };
        if (_retry.MaxRetryAttempts > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = _retry.MaxRetryAttempts,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = _retry.InitialDelay,
                MaxDelay = _retry.MaxDelay,
                ShouldHandle = args => ValueTask.FromResult(IsTransient(args.Outcome) && _time.GetElapsedTime(start) < _retry.Budget),
                OnRetry = args =>
                {
                    JobsLog.RequestRetry(_logger, method.Method, path, OutcomeReason(args.Outcome), args.AttemptNumber + 1, (long)args.RetryDelay.TotalMilliseconds);
                    return default;
                },
            });
        }

        return builder.Build();
    }

    internal static bool IsTransient(Outcome<HttpResponseMessage> outcome) => outcome switch
    {
        { Exception: HttpRequestException e } => IsTransient(e),
        { Exception: TimeoutException } => true,
        { Result: { } response } => IsTransientStatus(response.StatusCode),
        _ => false,
    };

    internal static bool IsTransientStatus(HttpStatusCode status) =>
        status is HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout;

    internal static bool IsTransient(HttpRequestException e) =>
        e.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.ResponseEnded
        || (e.HttpRequestError == HttpRequestError.Unknown && e.InnerException is SocketException or IOException);

    private static string OutcomeReason(Outcome<HttpResponseMessage> outcome) => outcome switch
    {
        { Exception: HttpRequestException e } => Reason(e),
        { Exception: { } e } => e.Message,
        { Result: { } response } => $"HTTP {(int)response.StatusCode}",
        _ => "unknown",
    };

    private static string Reason(HttpRequestException e)
    {
        if (e.InnerException is SocketException socket)
        {
            return socket.SocketErrorCode switch
            {
                SocketError.ConnectionRefused => "connection refused",
                SocketError.ConnectionReset => "connection reset",
                SocketError.HostNotFound or SocketError.NoData => "host not found",
                SocketError.TimedOut => "connect timed out",
                _ => socket.Message,
            };
        }

        return e.Message;
    }
}
