using System.Collections;
using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text;
using Microsoft.DotNet.Interactive.Formatting;

namespace RayClient.Interactive;

/// <summary>HTML and plain-text views of RayClient's types for notebook output.</summary>
internal static class RayFormatters
{
    private const string Html = "text/html";
    private const string Text = "text/plain";
    private const int PreviewLength = 120;
    // Displaying a ref never blocks the cell for long: past these it says "pending".
    private static readonly TimeSpan s_probeTimeout = TimeSpan.FromSeconds(2);
    private static int s_registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref s_registered, 1) != 0)
        {
            return;
        }

        Formatter.Register(typeof(ObjectRef), (value, context) => Write(context, Html, Describe(Probe((ObjectRef)value))), Html);
        Formatter.Register(typeof(ObjectRef), (value, context) => Write(context, Text, Describe(Probe((ObjectRef)value))), Text);
        Formatter.Register<PyActorHandle>((value, context) => Write(context, Html, Describe(value)), Html);
        Formatter.Register<PyActorHandle>((value, context) => Write(context, Text, Describe(value)), Text);
        Formatter.Register<RayConnectionState>((value, context) => Write(context, Html, DescribeHtml(value)), Html);
        Formatter.Register<RayConnectionState>((value, context) => Write(context, Text, DescribeHtml(value)), Text);
        Formatter.Register<RayTaskException>((value, context) => Write(context, Html, Describe(value)), Html);
        Formatter.Register<RayTaskException>((value, context) => Write(context, Text, Describe(value)), Text);
        Formatter.Register<RayClusterStatus>((value, context) => Write(context, Html, Describe(value)), Html);
        Formatter.Register<RayClusterStatus>((value, context) => Write(context, Text, Describe(value)), Text);
        Formatter.Register<RayProgress>((value, context) => Write(context, Html, Describe(value)), Html);
        Formatter.Register<RayProgress>((value, context) => Write(context, Text, Describe(value)), Text);
    }

    private static bool Write(FormatContext context, string mimeType, Rendered rendered)
    {
        context.Writer.Write(mimeType == Html ? rendered.Html : rendered.Text);
        return true;
    }

    internal sealed record Rendered(string Text, string Html);

    internal enum RefStatus
    {
        Pending,
        Ready,
        Failed,
        Released,
    }

    internal sealed record RefSnapshot(string? Id, RefStatus Status, string? Preview, Exception? Error);

    /// <summary>The ref's state without waiting for it: bounded probes, never an exception.</summary>
    internal static RefSnapshot Probe(ObjectRef reference)
    {
        if (reference.IsReleased)
        {
            return new RefSnapshot(reference.IsIdKnown ? reference.Hex : null, RefStatus.Released, null, null);
        }

        try
        {
            var idTask = reference.GetIdAsync();
            if (!WaitBounded(idTask))
            {
                return new RefSnapshot(null, RefStatus.Pending, null, null);
            }

            var id = idTask.Result;
            // A ref of its own, read untyped, so any ObjectRef<T> previews the same way.
            var untyped = (ObjectRef<object?>)reference.GetType().GetMethod(nameof(ObjectRef<object>.As))!.MakeGenericMethod(typeof(object)).Invoke(reference, null)!;
            try
            {
                var wait = Task.Run(() => reference.Session.WaitAsync([untyped], 1, TimeSpan.Zero));
                if (!WaitBounded(wait) || wait.Result.Ready.Count == 0)
                {
                    return new RefSnapshot(id, RefStatus.Pending, null, null);
                }

                var get = Task.Run(() => untyped.GetAsync(s_probeTimeout));
                if (!WaitBounded(get))
                {
                    return new RefSnapshot(id, RefStatus.Pending, null, null);
                }

                return new RefSnapshot(id, RefStatus.Ready, Preview(get.Result), null);
            }
            finally
            {
                _ = untyped.DisposeAsync().AsTask();
            }
        }
        catch (Exception ex) when (Unwrap(ex) is RayException or ObjectDisposedException or OperationCanceledException)
        {
            var error = Unwrap(ex);
            return new RefSnapshot(reference.IsIdKnown ? reference.Hex : null, RefStatus.Failed, null, error);
        }
#pragma warning disable CA1031 // a display must never fail the cell: anything else shows as the ref's state
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return new RefSnapshot(reference.IsIdKnown ? reference.Hex : null, RefStatus.Failed, null, Unwrap(ex));
        }
    }

    private static bool WaitBounded(Task task)
    {
        try
        {
            return task.Wait(s_probeTimeout);
        }
        catch (AggregateException ex)
        {
            throw ex.InnerException ?? ex;
        }
    }

    private static Exception Unwrap(Exception ex) => ex is AggregateException { InnerException: { } inner } ? Unwrap(inner) : ex is TargetInvocationException { InnerException: { } invoked } ? Unwrap(invoked) : ex;

    internal static string Preview(object? value)
    {
        var text = value switch
        {
            null => "None",
            string s => "'" + s + "'",
            byte[] bytes => $"bytes[{bytes.Length}]",
            bool b => b ? "True" : "False",
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            IDictionary dictionary => "{" + string.Join(", ", dictionary.Keys.Cast<object?>().Take(10).Select(k => Preview(k) + ": " + Preview(dictionary[k!]))) + (dictionary.Count > 10 ? ", …" : "") + "}",
            IEnumerable items => "[" + string.Join(", ", items.Cast<object?>().Take(11).Select((item, i) => i == 10 ? "…" : Preview(item))) + "]",
            _ => value.ToString() ?? value.GetType().Name,
        };
        return text.Length > PreviewLength ? string.Concat(text.AsSpan(0, PreviewLength), "…") : text;
    }

    private static string Encode(string? text) => WebUtility.HtmlEncode(text ?? "");

    internal static Rendered Describe(RefSnapshot snapshot)
    {
        var id = snapshot.Id ?? "(id not assigned yet)";
        var state = snapshot.Status.ToString().ToLowerInvariant();
        var detail = snapshot.Status switch
        {
            RefStatus.Ready => snapshot.Preview,
            RefStatus.Failed => snapshot.Error is RayTaskException task ? $"{task.PythonType}: {task.PythonMessage}" : snapshot.Error?.Message,
            _ => null,
        };
        var text = $"ObjectRef({id}) {state}" + (detail is null ? "" : $": {detail}");
        var color = snapshot.Status switch { RefStatus.Ready => "#2e7d32", RefStatus.Failed => "#c62828", _ => "#9e6a03" };
        var html = new StringBuilder();
        html.Append("<div class=\"rayclient-ref\"><code>ObjectRef</code> <code>").Append(Encode(id)).Append("</code> ")
            .Append("<span style=\"color:").Append(color).Append(";font-weight:bold\">").Append(state).Append("</span>");
        if (detail is not null)
        {
            html.Append(snapshot.Status == RefStatus.Ready ? " = " : ": ").Append("<code>").Append(Encode(detail)).Append("</code>");
        }

        if (snapshot.Error is RayTaskException { PythonTraceback: { Length: > 0 } traceback })
        {
            html.Append("<details><summary>Python traceback</summary><pre>").Append(Encode(traceback)).Append("</pre></details>");
        }

        return new Rendered(text, html.Append("</div>").ToString());
    }

    internal static Rendered Describe(PyActorHandle actor)
    {
        string id;
        string state;
        try
        {
            var idTask = actor.GetIdAsync();
            if (WaitBounded(idTask))
            {
                id = idTask.Result;
                state = actor.Session.ConnectionState.Status is RayConnectionStatus.Lost or RayConnectionStatus.Closed ? "unusable (session ended)" : "created";
            }
            else
            {
                id = "(id not assigned yet)";
                state = "pending";
            }
        }
        catch (Exception ex) when (Unwrap(ex) is RayException or ObjectDisposedException or OperationCanceledException)
        {
            id = "(none)";
            state = "failed: " + Unwrap(ex).Message;
        }

        if (actor.Name is null)
        {
            // Unnamed (or a handle from Python, whose name the client is not told): as before names existed.
            var text = $"Actor {actor.ClassName} {id} {state}";
            var html = $"<div class=\"rayclient-actor\"><b>Actor</b> <code>{Encode(actor.ClassName)}</code> id <code>{Encode(id)}</code> namespace <code>{Encode(actor.Session.Namespace ?? "(anonymous)")}</code> <i>{Encode(state)}</i></div>";
            return new Rendered(text, html);
        }

        var rayNamespace = actor.Namespace ?? "(anonymous)";
        var namedText = $"Actor {actor.ClassName} name {actor.Name} namespace {rayNamespace} {id} {state}";
        var namedHtml = $"<div class=\"rayclient-actor\"><b>Actor</b> <code>{Encode(actor.ClassName)}</code> name <code>{Encode(actor.Name)}</code> id <code>{Encode(id)}</code> namespace <code>{Encode(rayNamespace)}</code> <i>{Encode(state)}</i></div>";
        return new Rendered(namedText, namedHtml);
    }

    internal static string Describe(RayConnectionState state)
    {
        var text = new StringBuilder(state.Status.ToString().ToLowerInvariant());
        if (state.Status == RayConnectionStatus.Reconnecting)
        {
            text.Append(CultureInfo.InvariantCulture, $" (attempt {state.Attempt})");
        }

        if (state.Since is { } since && state.Status is RayConnectionStatus.Reconnecting or RayConnectionStatus.Reconnected or RayConnectionStatus.Lost)
        {
            text.Append(CultureInfo.InvariantCulture, $", outage since {since:HH:mm:ss.fff}");
        }

        if (!string.IsNullOrEmpty(state.Reason))
        {
            text.Append(": ").Append(state.Reason);
        }

        return text.ToString();
    }

    private static Rendered DescribeHtml(RayConnectionState state)
    {
        var color = state.Status switch
        {
            RayConnectionStatus.Connected or RayConnectionStatus.Reconnected => "#2e7d32",
            RayConnectionStatus.Reconnecting or RayConnectionStatus.Connecting => "#9e6a03",
            _ => "#c62828",
        };
        var text = "ray session: " + Describe(state);
        return new Rendered(text, $"<div class=\"rayclient-state\">ray session: <span style=\"color:{color};font-weight:bold\">{Encode(Describe(state))}</span></div>");
    }

    internal static Rendered Describe(RayTaskException error)
    {
        var text = $"{error.PythonType}: {error.PythonMessage}" + (error.PythonTraceback is { Length: > 0 } tb ? "\n" + tb : "");
        var html = $"<div class=\"rayclient-error\"><b style=\"color:#c62828\">{Encode(error.PythonType)}</b>: {Encode(error.PythonMessage)}"
            + (error.PythonTraceback is { Length: > 0 } traceback ? $"<pre>{Encode(traceback)}</pre>" : "") + "</div>";
        return new Rendered(text, html);
    }

    internal static Rendered Describe(RayClusterStatus status)
    {
        var keys = status.Total.Keys.Union(status.Available.Keys).Order(StringComparer.Ordinal).ToList();
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"{status.Nodes.Count} node(s)");
        foreach (var node in status.Nodes)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  {node.NodeId} {(node.Alive ? "alive" : "dead")} {node.Address} {string.Join(", ", node.Resources.Select(r => $"{r.Key}={r.Value.ToString(CultureInfo.InvariantCulture)}"))}");
        }

        text.AppendLine("resource   total   available");
        foreach (var key in keys)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{key,-10} {status.Total.GetValueOrDefault(key),7} {status.Available.GetValueOrDefault(key),11}");
        }

        var html = new StringBuilder("<div class=\"rayclient-status\"><table><thead><tr><th>node</th><th>alive</th><th>address</th><th>resources</th></tr></thead><tbody>");
        foreach (var node in status.Nodes)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td><code>{Encode(node.NodeId)}</code></td><td>{(node.Alive ? "yes" : "no")}</td><td>{Encode(node.Address)}</td><td>{Encode(string.Join(", ", node.Resources.Select(r => $"{r.Key}={r.Value.ToString(CultureInfo.InvariantCulture)}")))}</td></tr>");
        }

        html.Append("</tbody></table><table><thead><tr><th>resource</th><th>total</th><th>available</th></tr></thead><tbody>");
        foreach (var key in keys)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{Encode(key)}</td><td>{status.Total.GetValueOrDefault(key)}</td><td>{status.Available.GetValueOrDefault(key)}</td></tr>");
        }

        return new Rendered(text.ToString(), html.Append("</tbody></table></div>").ToString());
    }

    internal static Rendered Describe(RayProgress progress)
    {
        var percent = progress.Total == 0 ? 100 : progress.Done * 100 / progress.Total;
        var text = $"{progress.Done} / {progress.Total} ready";
        return new Rendered(text, $"<div class=\"rayclient-progress\"><progress max=\"{progress.Total}\" value=\"{progress.Done}\"></progress> {progress.Done} / {progress.Total} ready ({percent}%)</div>");
    }
}
