using System.Text;
using System.Text.Json;
using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.CSharp;
using Microsoft.DotNet.Interactive.Events;
using Microsoft.DotNet.Interactive.PackageManagement;

namespace RayClient.Interactive.Tests.Infrastructure;

/// <summary>What one cell produced.</summary>
public sealed record CellResult(string Code, IReadOnlyList<KernelEvent> Events)
{
    public string? Failure => Events.OfType<CommandFailed>().Select(f => f.Message + (f.Exception is null ? "" : "\n" + f.Exception)).FirstOrDefault();

    /// <summary>Every text/plain output (displays, return values, stdout, stderr) in order.</summary>
    public string PlainText => string.Join("\n", Events.SelectMany(e => e switch
    {
        // Plain text where there is some, else the HTML's text (Display picks text/html by default).
        DisplayEvent d => d.FormattedValues.Any(v => v.MimeType == "text/plain")
            ? d.FormattedValues.Where(v => v.MimeType == "text/plain").Select(v => v.Value)
            : d.FormattedValues.Where(v => v.MimeType == "text/html").Select(v => HtmlText(v.Value)),
        _ => [],
    }));

    public IEnumerable<string> Html => Events.OfType<DisplayEvent>().SelectMany(d => d.FormattedValues).Where(v => v.MimeType == "text/html").Select(v => v.Value);

    private static string HtmlText(string html) => System.Net.WebUtility.HtmlDecode(
        System.Text.RegularExpressions.Regex.Replace(System.Text.RegularExpressions.Regex.Replace(html, "<[^>]+>", " "), @"[ \t]+", " ")).Replace(" :", ":", StringComparison.Ordinal).Trim();

    public string Describe() => $"cell:\n{Code}\n--- outputs ---\n{PlainText}\n--- failure ---\n{Failure}";
}

/// <summary>
/// An in-process notebook kernel as dotnet-interactive builds one: a composite kernel with the C#
/// kernel, the #r "nuget:" directive, and package extensions loaded when a package that has
/// interactive-extensions/dotnet is added (extension.dib run in the kernel, as dotnet-repl does).
/// </summary>
public sealed class NotebookKernel : IDisposable
{
    private readonly CompositeKernel _kernel;

    public NotebookKernel()
    {
        var csharp = new CSharpKernel()
            .UseKernelHelpers()
            .UseNugetDirective((kernel, references) =>
            {
                kernel.AddAssemblyReferences(references.SelectMany(r => r.AssemblyPaths));
                return Task.CompletedTask;
            }, forceRestore: false);
        _kernel = new CompositeKernel { csharp };
        _kernel.DefaultKernelName = csharp.Name;
        var added = new System.Collections.Concurrent.ConcurrentQueue<PackageAdded>();
        _kernel.KernelEvents.Subscribe(new Observer(e =>
        {
            _events.Enqueue(e);
            if (e is PackageAdded package)
            {
                added.Enqueue(package);
            }
        }));
        _kernel.AddMiddleware(async (command, context, next) =>
        {
            await next(command, context);
            while (added.TryDequeue(out var package))
            {
                var extension = new FileInfo(Path.Combine(package.PackageReference.PackageRoot, "interactive-extensions", "dotnet", "extension.dib"));
                if (extension.Exists)
                {
                    LoadedExtensions.Add(package.PackageReference.PackageName);
                    await _kernel.LoadAndRunInteractiveDocument(extension, command);
                }
            }
        });
    }

    public List<string> LoadedExtensions { get; } = [];

    public CompositeKernel Kernel => _kernel;

    public async Task<CellResult> RunAsync(string code, CancellationToken cancellationToken = default)
    {
        var result = await _kernel.SendAsync(new SubmitCode(code, "csharp"), cancellationToken);
        return new CellResult(code, result.Events);
    }

    /// <summary>Runs a cell and fails the test if it failed.</summary>
    public async Task<CellResult> RunOkAsync(string code)
    {
        var cell = await RunAsync(code);
        Assert.True(cell.Failure is null, cell.Describe());
        return cell;
    }

    /// <summary>Waits until some cell displays a value whose text contains <paramref name="text"/>.</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (!_events.Any(e => e is DisplayEvent d && d.FormattedValues.Any(v => v.Value.Contains(text, StringComparison.Ordinal))))
        {
            await Task.Delay(20, deadline.Token); // bounded poll over the kernel's event log
        }
    }

    private readonly System.Collections.Concurrent.ConcurrentQueue<KernelEvent> _events = new();

    public void Dispose() => _kernel.Dispose();

    private sealed class Observer(Action<KernelEvent> onNext) : IObserver<KernelEvent>
    {
        public void OnCompleted()
        {
        }

        public void OnError(Exception error)
        {
        }

        public void OnNext(KernelEvent value) => onNext(value);
    }
}

/// <summary>A notebook's code cells with what its markdown tells the reader to expect.</summary>
public sealed record NotebookCell(string Code, IReadOnlyList<string> Expect);

public static class NotebookFile
{
    /// <summary>Reads the code cells of an .ipynb; a cell's metadata "rayclient": {"expect": [...]} lists the outputs the text promises.</summary>
    public static IReadOnlyList<NotebookCell> Read(string path, out string markdown)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var cells = new List<NotebookCell>();
        var text = new StringBuilder();
        foreach (var cell in doc.RootElement.GetProperty("cells").EnumerateArray())
        {
            var source = cell.GetProperty("source") is { ValueKind: JsonValueKind.Array } lines
                ? string.Concat(lines.EnumerateArray().Select(l => l.GetString()))
                : cell.GetProperty("source").GetString() ?? "";
            if (cell.GetProperty("cell_type").GetString() == "markdown")
            {
                text.AppendLine(source);
                continue;
            }

            var expect = new List<string>();
            if (cell.TryGetProperty("metadata", out var metadata) && metadata.TryGetProperty("rayclient", out var ours) && ours.TryGetProperty("expect", out var values))
            {
                expect.AddRange(values.EnumerateArray().Select(v => v.GetString()!));
            }

            cells.Add(new NotebookCell(source, expect));
        }

        markdown = text.ToString();
        return cells;
    }
}
