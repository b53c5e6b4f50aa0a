// Probe floe's Postgres wire endpoint the way JDBC-based BI tools
// (DBeaver, Metabase, ...) do: connect, walk DatabaseMetaData, then run a
// parameterised query through a PreparedStatement.
//
// Run (single-file source launch, Java 11+):
//   java -cp /usr/share/java/postgresql.jar tests/java/JdbcProbe.java \
//       'jdbc:postgresql://127.0.0.1:PORT/floe' ana secret [sku]
//
// Append `?preferQueryMode=simple` to the URL to use the simple query
// protocol instead of the default extended one.
//
// Output: one line per item, each prefixed by its kind, so a test can assert
// on stdout:
//   connected <product> <version>
//   schema <name>
//   table <schema>.<name> <type>
//   column <table>.<name> <type_name> <nullable>
//   pk <table> <column> <key_seq>
//   row <col>=<value> ...
//   error <step>: <message>
//   done ok=<n> failed=<n>
// The exit code is 0 if every step succeeded, 1 otherwise (2 if the
// connection itself failed).

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.util.Properties;

public class JdbcProbe {
    interface Step {
        void run() throws Exception;
    }

    static int ok = 0;
    static int failed = 0;

    static void step(String name, Step body) {
        try {
            body.run();
            ok++;
        } catch (Throwable e) {
            failed++;
            String msg = String.valueOf(e.getMessage()).replace('\n', ' ');
            System.out.println("error " + name + ": " + msg);
            if (e instanceof SQLException) {
                String state = ((SQLException) e).getSQLState();
                if (state != null) {
                    System.out.println("sqlstate " + name + ": " + state);
                }
            }
        }
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: JdbcProbe <jdbcUrl> <user> <password> [sku]");
            System.exit(64);
        }
        String url = args[0];
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        props.setProperty("ApplicationName", "JdbcProbe");
        String sku = args.length > 3 ? args[3] : null;

        Connection conn;
        try {
            conn = DriverManager.getConnection(url, props);
        } catch (SQLException e) {
            System.out.println("error connect: " + String.valueOf(e.getMessage()).replace('\n', ' '));
            System.out.println("done ok=0 failed=1");
            System.exit(2);
            return;
        }
        ok++;
        final Connection c = conn;
        DatabaseMetaData md = c.getMetaData();
        System.out.println("connected " + md.getDatabaseProductName() + " "
                + md.getDatabaseProductVersion());

        step("getSchemas", () -> {
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) {
                    System.out.println("schema " + rs.getString("TABLE_SCHEM"));
                }
            }
        });

        step("getTables", () -> {
            try (ResultSet rs = md.getTables(null, "depot", "%", null)) {
                while (rs.next()) {
                    System.out.println("table " + rs.getString("TABLE_SCHEM") + "."
                            + rs.getString("TABLE_NAME") + " " + rs.getString("TABLE_TYPE"));
                }
            }
        });

        step("getColumns", () -> {
            try (ResultSet rs = md.getColumns(null, "depot", "parts", null)) {
                while (rs.next()) {
                    System.out.println("column " + rs.getString("TABLE_NAME") + "."
                            + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME")
                            + " " + rs.getString("IS_NULLABLE"));
                }
            }
        });

        step("getPrimaryKeys", () -> {
            try (ResultSet rs = md.getPrimaryKeys(null, "depot", "parts_latest")) {
                while (rs.next()) {
                    System.out.println("pk " + rs.getString("TABLE_NAME") + " "
                            + rs.getString("COLUMN_NAME") + " " + rs.getInt("KEY_SEQ"));
                }
            }
        });

        // Pick a real sku from the data if none was given on the command line.
        final String[] key = {sku};
        if (key[0] == null) {
            step("pickSku", () -> {
                try (java.sql.Statement st = c.createStatement();
                     ResultSet rs = st.executeQuery(
                             "SELECT sku FROM depot.parts_latest ORDER BY sku LIMIT 1")) {
                    if (rs.next()) {
                        key[0] = rs.getString(1);
                        System.out.println("sku " + key[0]);
                    } else {
                        throw new SQLException("depot.parts_latest is empty");
                    }
                }
            });
        }

        step("prepared", () -> {
            try (PreparedStatement ps =
                         c.prepareStatement("SELECT qty FROM depot.parts_latest WHERE sku = ?")) {
                ps.setString(1, key[0] == null ? "P-200" : key[0]);
                try (ResultSet rs = ps.executeQuery()) {
                    printRows(rs);
                }
            }
        });

        try {
            c.close();
        } catch (SQLException e) {
            // ignore
        }
        System.out.println("done ok=" + ok + " failed=" + failed);
        System.exit(failed == 0 ? 0 : 1);
    }

    static void printRows(ResultSet rs) throws SQLException {
        ResultSetMetaData m = rs.getMetaData();
        int n = m.getColumnCount();
        while (rs.next()) {
            StringBuilder sb = new StringBuilder("row");
            for (int i = 1; i <= n; i++) {
                sb.append(' ').append(m.getColumnLabel(i)).append('=').append(rs.getString(i));
            }
            System.out.println(sb);
        }
    }
}
