namespace RayClient.Jobs;

/// <summary>
/// Turns the Jobs API's error answers into typed exceptions, in one place (as redis'
/// ExceptionFactory). Ray answers errors in plain text, usually a Python traceback
/// (ray:python/ray/dashboard/modules/job/job_head.py); the exception's message is its last line and
/// <see cref="RayJobsException.ServerMessage"/> keeps the whole text.
/// </summary>
internal static class JobsErrors
{
    private const int MaxServerMessageLength = 16 * 1024;

    /// <summary>The message Ray's job manager raises for a taken submission id.</summary>
    private const string AlreadyExistsMarker = "already exists";

    /// <summary>Builds the exception for an error answer to <paramref name="operation"/>.</summary>
    /// <param name="status">The HTTP status.</param>
    /// <param name="body">The answer's text.</param>
    /// <param name="operation">What was asked, e.g. <c>submit job</c>, for the message.</param>
    /// <param name="jobId">The job or submission id the request named, if any.</param>
    /// <param name="isSubmit">Whether the request was a submit (duplicates are detected only there).</param>
    public static RayJobsException FromResponse(int status, string? body, string operation, string? jobId, bool isSubmit = false)
    {
        var text = Truncate(body?.Trim());
        var summary = Summarize(text);
        var detail = summary is null ? string.Empty : $": {summary}";
        switch (status)
        {
            case 401:
                return new RayJobsUnauthorizedException(
                    $"The Ray cluster requires an authentication token and none was sent (HTTP 401){detail}. Set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) or JobSubmissionClientOptions.Token.",
                    status, text);
            case 403:
                return new RayJobsUnauthorizedException(
                    $"The Ray cluster refused the authentication token (HTTP 403){detail}. Check RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) or JobSubmissionClientOptions.Token.",
                    status, text);
            case 404 when jobId is not null:
                return new RayJobNotFoundException($"Job '{jobId}' does not exist (HTTP 404){(summary is null || summary.Contains("does not exist", StringComparison.Ordinal) ? string.Empty : detail)}.", jobId, status, text);
            case 413:
                return new RayJobsException(
                    $"The server refused the request as too large (HTTP 413){detail}. The Ray dashboard accepts bodies up to 100 MiB: make the working_dir smaller (excludes, .rayignore) or use a remote URI.",
                    status, text);
            case 400 or 409 or 500 when isSubmit && jobId is not null && text is not null && text.Contains(AlreadyExistsMarker, StringComparison.Ordinal):
                return new RayJobAlreadyExistsException(
                    $"A job with submission id '{jobId}' already exists (HTTP {status}). Use a different submission id.",
                    jobId, status, text);
            case 400 or 405:
                return new RayJobsInvalidRequestException($"The Jobs API rejected the request to {operation} (HTTP {status}){detail}.", status, text);
            case 500 when text is not null && text.Contains("HTTPRequestEntityTooLarge", StringComparison.Ordinal):
                return new RayJobsException(
                    $"The server refused the request as too large (HTTP 500, HTTPRequestEntityTooLarge). The Ray dashboard accepts bodies up to 100 MiB: make the working_dir smaller (excludes, .rayignore) or use a remote URI.",
                    status, text);
            case 502 or 503 or 504:
                return new RayJobsException($"The Jobs API is unavailable (HTTP {status}) and did not recover within the retry budget while trying to {operation}{detail}.", status, text, isTransient: true);
            default:
                return new RayJobsException($"The request to {operation} failed with HTTP {status}{detail}.", status, text);
        }
    }

    /// <summary>The most telling line of a traceback: its last non-empty line (e.g. <c>ValueError: …</c>).</summary>
    internal static string? Summarize(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        var lines = text.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var last = lines[^1];

        // The head wraps agent errors as "Request failed with status code 400: Traceback …"; a
        // final line of just "." or a bare status repeats nothing useful, so look one line up.
        if (last.Length <= 2 && lines.Length > 1)
        {
            last = lines[^2];
        }

        return last.Length > 500 ? last[..500] + "…" : last;
    }

    private static string? Truncate(string? text) =>
        text is null || text.Length <= MaxServerMessageLength ? text : text[..MaxServerMessageLength] + "…";
}
