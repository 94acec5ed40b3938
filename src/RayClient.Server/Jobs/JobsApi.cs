using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace RayClient.Server.Jobs;

/// <summary>
/// The Ray Jobs REST API of the dashboard (ray: python/ray/dashboard/modules/job/job_head.py) on
/// its own port (HTTP/1.1, for the logs websocket): paths, status codes, plain-text errors and
/// JSON field names as Ray's. It translates requests for the <see cref="JobManager"/> and the
/// package store it shares with the Ray Client protocol.
/// </summary>
internal sealed class JobsApi : IAsyncDisposable
{
    /// <summary>The dashboard's request body cap (ray_constants.DASHBOARD_CLIENT_MAX_SIZE).</summary>
    internal const long MaxBody = 100L * 1024 * 1024;

    /// <summary>The Jobs API level this server speaks (Ray releases report "4").</summary>
    internal const string ApiVersion = "4";

    private static readonly string[] BrowserHeaders =
    [
        "Referer", "Origin", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-Site", "Sec-Fetch-User",
        "Access-Control-Request-Method", "Access-Control-Request-Headers",
    ];

    private readonly WebApplication _app;

    private JobsApi(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    public static async Task<JobsApi> StartAsync(ServerState state, JobManager jobs, IPAddress address, ServerSecurity security, int port, ILoggerFactory? loggerFactory, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore();
        builder.Services.AddRoutingCore();
        builder.Services.AddLogging();
        builder.Services.AddSingleton<Microsoft.Extensions.Hosting.IHostLifetime, LocalRayServer.EmbeddedLifetime>();
        if (loggerFactory is not null)
        {
            builder.Services.AddSingleton(loggerFactory);
        }

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = MaxBody;
            kestrel.Listen(address, port, listen => listen.Protocols = HttpProtocols.Http1);
        });
        var app = builder.Build();
        app.Use(Unexpected);
        app.UseWebSockets();
        app.Use(RejectBrowsers);
        // The same token as the Ray Client port (Ray's token auth covers the dashboard too).
        if (security.ExpectedAuthorization is { } expected)
        {
            app.Use((context, next) => Authenticate(context, next, expected));
        }

        app.UseRouting();
        Map(app, state, jobs, security.RequiresToken);
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A Kestrel that did not start still holds its services (and whatever it did bind).
            await app.DisposeAsync().ConfigureAwait(false);
            if (ex is IOException bindError)
            {
                throw LocalRayServerListenException.For("the Ray Jobs API", "LocalRayServerOptions.DashboardPort, rayclient start --dashboard-port", address, port, bindError);
            }

            throw;
        }

        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        return new JobsApi(app, new Uri(addresses.First()).Port);
    }

    /// <summary>A failure inside the server is a 500 with a plain-text body, as Ray's handlers answer one.</summary>
    private static async Task Unexpected(HttpContext context, RequestDelegate next)
    {
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException && !context.Response.HasStarted)
        {
            await Text(context, 500, Traceback(ex.GetType().Name, ex.Message)).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Ray's dashboard refuses POST and PUT from browsers (a browser User-Agent or, in newest
    /// releases, any fetch/CORS header), so a web page cannot submit jobs to a local cluster.
    /// </summary>
    private static Task RejectBrowsers(HttpContext context, RequestDelegate next)
    {
        var request = context.Request;
        if ((HttpMethods.IsPost(request.Method) || HttpMethods.IsPut(request.Method))
            && (request.Headers.UserAgent.ToString().StartsWith("Mozilla", StringComparison.Ordinal) || BrowserHeaders.Any(h => request.Headers.ContainsKey(h))))
        {
            return Text(context, 405, "Method Not Allowed for browser traffic.");
        }

        return next(context);
    }

    /// <summary>
    /// Ray's token auth (ray: python/ray/_private/authentication/http_token_authentication.py):
    /// the token from Authorization, else X-Ray-Authorization, else the cookie; none is a 401,
    /// a wrong one a 403. The mode query stays open, as in Ray.
    /// </summary>
    private static Task Authenticate(HttpContext context, RequestDelegate next, byte[] expected)
    {
        if (context.Request.Path.Equals("/api/authentication_mode", StringComparison.Ordinal))
        {
            return next(context);
        }

        var headers = context.Request.Headers;
        var presented = headers.Authorization.ToString();
        if (presented.Length == 0)
        {
            presented = headers["X-Ray-Authorization"].ToString();
        }

        if (presented.Length == 0 && context.Request.Cookies.TryGetValue("ray-authentication-token", out var cookie) && !string.IsNullOrEmpty(cookie))
        {
            presented = "Bearer " + cookie;
        }

        if (presented.Length == 0)
        {
            return Text(context, 401, "Unauthorized: Missing authentication token");
        }

        return System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), expected)
            ? next(context)
            : Text(context, 403, "Forbidden: Invalid authentication token");
    }

    private static void Map(WebApplication app, ServerState state, JobManager jobs, bool requiresToken)
    {
        app.MapGet("/api/authentication_mode", (RequestDelegate)(context => Json(context, 200, new JsonObject
        {
            ["authentication_mode"] = requiresToken ? "token" : "disabled",
        })));

        app.MapGet("/api/version", (RequestDelegate)(context => Json(context, 200, new JsonObject
        {
            ["version"] = ApiVersion,
            ["ray_version"] = state.Options.ReportedRayVersion,
            ["ray_commit"] = "rayclient-embedded-server",
            ["session_name"] = state.SessionName,
        })));

        app.MapGet("/api/packages/{protocol}/{package_name}", (RequestDelegate)(context =>
        {
            if (PackageUri(context) is not { } uri)
            {
                return Text(context, 500, Traceback("NotImplementedError", $"Only gcs:// packages can be stored by the embedded server, got {context.Request.RouteValues["protocol"]}."));
            }

            return state.Kv.Exists(Encoding.UTF8.GetBytes(uri), null)
                ? Text(context, 200, string.Empty)
                : Text(context, 404, $"Package {uri} does not exist");
        }));

        app.MapPut("/api/packages/{protocol}/{package_name}", (RequestDelegate)(async context =>
        {
            if (PackageUri(context) is not { } uri)
            {
                await Text(context, 500, Traceback("RuntimeError", "upload_package_to_gcs should not be called with a remote path.")).ConfigureAwait(false);
                return;
            }

            var data = await ReadBodyAsync(context).ConfigureAwait(false);
            if (data is null)
            {
                return;
            }

            // The same store the Ray Client protocol's KVPut writes packages to.
            state.Kv.Put(Encoding.UTF8.GetBytes(uri), data, overwrite: true, null);
            await Text(context, 200, string.Empty).ConfigureAwait(false);
        }));

        RequestDelegate submit = async context =>
        {
            var body = await ReadBodyAsync(context).ConfigureAwait(false);
            if (body is null)
            {
                return;
            }

            await Handle(context, () =>
            {
                var id = jobs.Submit(JobSubmitRequest.Parse(body));
                return Json(context, 200, new JsonObject { ["job_id"] = id, ["submission_id"] = id });
            }).ConfigureAwait(false);
        };
        RequestDelegate list = context => Json(context, 200, new JsonArray([.. jobs.List().Select(r => (JsonNode)r.ToDetails())]));
        app.MapPost("/api/jobs/", submit); // routing ignores the trailing slash: /api/jobs is served too
        app.MapGet("/api/jobs/", list);

        app.MapGet("/api/jobs/{id}", (RequestDelegate)(context => Handle(context, () =>
            jobs.Get(Id(context)) is { } record ? Json(context, 200, record.ToDetails()) : Text(context, 404, $"Job {Id(context)} does not exist"))));

        app.MapPost("/api/jobs/{id}/stop", (RequestDelegate)(context => Handle(context, () =>
            Json(context, 200, new JsonObject { ["stopped"] = jobs.Stop(Id(context)) }))));

        app.MapDelete("/api/jobs/{id}", (RequestDelegate)(context => Handle(context, () =>
            Json(context, 200, new JsonObject { ["deleted"] = jobs.Delete(Id(context)) }))));

        app.MapGet("/api/jobs/{id}/logs", (RequestDelegate)(context => Handle(context, () =>
            Json(context, 200, new JsonObject { ["logs"] = jobs.ReadLogs(Id(context)) }))));

        app.MapGet("/api/jobs/{id}/logs/tail", (RequestDelegate)(async context =>
        {
            var id = Id(context);
            if (jobs.Get(id) is null)
            {
                await Text(context, 404, $"Job {id} does not exist").ConfigureAwait(false);
                return;
            }

            if (!context.WebSockets.IsWebSocketRequest)
            {
                await Text(context, 400, "Expected a websocket upgrade request.").ConfigureAwait(false);
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync().ConfigureAwait(false);
            var aborted = context.RequestAborted;
            try
            {
                await foreach (var chunk in jobs.TailAsync(id, aborted).ConfigureAwait(false))
                {
                    await socket.SendAsync(Encoding.UTF8.GetBytes(chunk), WebSocketMessageType.Text, endOfMessage: true, aborted).ConfigureAwait(false);
                }

                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, aborted).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or IOException)
            {
                // The follower went away.
            }
        }));
    }

    private static string Id(HttpContext context) => (string)context.Request.RouteValues["id"]!;

    private static string? PackageUri(HttpContext context)
    {
        var protocol = (string)context.Request.RouteValues["protocol"]!;
        return protocol == "gcs" ? $"gcs://{context.Request.RouteValues["package_name"]}" : null;
    }

    private static async Task<byte[]?> ReadBodyAsync(HttpContext context)
    {
        try
        {
            using var buffer = new MemoryStream();
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
            return buffer.ToArray();
        }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException ex) when (ex.StatusCode == 413)
        {
            await Text(context, 413, $"Maximum request body size {MaxBody} exceeded.").ConfigureAwait(false);
            return null;
        }
    }

    private static async Task Handle(HttpContext context, Func<Task> action)
    {
        try
        {
            await action().ConfigureAwait(false);
        }
        catch (JobsApiException ex)
        {
            await Text(context, ex.StatusCode, ex.Message).ConfigureAwait(false);
        }
    }

    private static string Traceback(string type, string message) => JobsApiException.Traceback(500, type, message).Message;

    private static Task Json(HttpContext context, int status, JsonNode body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(body.ToJsonString(), context.RequestAborted);
    }

    private static Task Text(HttpContext context, int status, string body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return body.Length == 0 ? Task.CompletedTask : context.Response.WriteAsync(body, context.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _app.StopAsync(stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        await _app.DisposeAsync().ConfigureAwait(false);
    }
}

