package shop;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * A single-node OpenSearch 2.19 server on 127.0.0.1, for the shop's product search.
 *
 * <pre>
 *   java -Xms512m -Xmx512m -XX:+UseSerialGC -cp 'target/classes:target/lib/*' \
 *       shop.SearchNode STATE_DIR [HTTP_PORT] [key=value ...]
 * </pre>
 *
 * STATE_DIR holds the node's home (config/, data/, logs/). HTTP_PORT falls back to $OPENSEARCH_HTTP_PORT, then 9200.
 * Any further key=value argument is one more node setting (for example transport.port=9300).
 * Logs go to standard output. SIGTERM (or SIGINT) closes the node cleanly.
 *
 * The plugins that the OpenSearch distribution ships as modules are handed over as classpath
 * plugins, through Node's protected constructor: netty4 (HTTP and transport), analysis-common
 * (edge_ngram, asciifolding, ...), mapper-extras (search_as_you_type, scaled_float, ...),
 * reindex and painless.
 */
public final class SearchNode {

    static final List<Class<? extends Plugin>> PLUGINS = List.of(
        Netty4Plugin.class,
        CommonAnalysisPlugin.class,
        MapperExtrasPlugin.class,
        ReindexPlugin.class,
        PainlessPlugin.class
    );

    /** Node with classpath plugins: the constructor that takes them is protected. */
    static final class PluginNode extends Node {
        PluginNode(Environment environment) {
            super(environment, PLUGINS, true);
        }
    }

    private SearchNode() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: shop.SearchNode STATE_DIR [HTTP_PORT] [key=value ...]");
            System.exit(2);
        }
        Path state = Path.of(args[0]).toAbsolutePath().normalize();
        String port = args.length > 1 ? args[1] : System.getenv().getOrDefault("OPENSEARCH_HTTP_PORT", "9200");
        Files.createDirectories(state.resolve("data"));
        Files.createDirectories(state.resolve("logs"));

        Settings.Builder builder = Settings.builder()
            .put("cluster.name", "shop-search")
            .put("node.name", "node-1")
            .put("path.home", state.toString())
            .put("path.data", state.resolve("data").toString())
            .put("path.logs", state.resolve("logs").toString())
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", "0")
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            .put("discovery.type", "single-node")
            // A developer's nearly full disk must not turn the indices read-only.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            // Small machine: no memory locking, no swap checks.
            .put("bootstrap.memory_lock", false);
        for (int i = 2; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("not a key=value setting: " + args[i]);
                System.exit(2);
            }
            builder.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        Settings settings = builder.build();

        // OpenSearch reads its logging setup from <path.home>/config/log4j2.properties.
        Path config = Files.createDirectories(state.resolve("config"));
        try (InputStream in = SearchNode.class.getResourceAsStream("/shop-search-log4j2.properties")) {
            Files.copy(in, config.resolve("log4j2.properties"), StandardCopyOption.REPLACE_EXISTING);
        }
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), config, () -> settings.get("node.name"));
        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName(settings.get("node.name"));
        LogConfigurator.configure(environment);
        Node node = new PluginNode(environment);

        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "shop-search-shutdown"));

        node.start();
        System.out.println("shop.SearchNode ready: http://127.0.0.1:" + port + " state=" + state);
        closed.await();
    }
}
